/**
 * What `ccat migrate` would do to an ops-db, found without doing it: which migrations are
 * pending, the statements each would run, whether each is an expand step the previous release's
 * workers survive or a contract step that needs them stopped, and the locks it takes. A
 * migration is an Effect, not a file of SQL, so its statements are taken by running it with every
 * statement swapped for a no-op as it is about to be sent (`Statement.withTransformer`): the
 * database sees `select` of nothing and keeps its schema. A migration that reads rows to decide
 * what to run is shown as it runs on an empty answer.
 */
import { Migrations } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import { createHash } from "node:crypto"
import { contractSteps, judge, reviewed, type Judged, type Step } from "./MigrationRules.js"
import { split } from "./SqlStatements.js"

/** A migration could not be run with its statements swapped for no-ops (it failed on its own). */
export class MigrationPlanError extends Data.TaggedError("MigrationPlanError")<{ readonly migration: string; readonly cause: unknown }> {
  override get message(): string {
    return `cannot tell what migration ${this.migration} would do: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** A migration as the Migrator names it: `NNNN_name` is id NNNN and name `name`. */
export interface MigrationName {
  readonly id: number
  readonly name: string
}

/** One pending migration, judged. */
export interface PlannedMigration extends MigrationName {
  /** `digest` of its statements, which a review in `MigrationRules.reviewed` names. */
  readonly digest: string
  /** A review of it exists but was made for other statements: it no longer applies. */
  readonly staleReview: boolean
  /** `expand` when every statement is one; `contract` when any needs the previous release stopped. */
  readonly step: Step
  readonly statements: ReadonlyArray<Judged>
}

/** What `ccat migrate` would do now. */
export interface Plan {
  readonly applied: ReadonlyArray<MigrationName>
  /** Pending, oldest first: what `ccat migrate` applies, each in its own transaction. */
  readonly pending: ReadonlyArray<PlannedMigration>
  /**
   * Never applied yet numbered below the newest applied one: the Migrator skips them for good
   * (a migration added with a number taken too low).
   */
  readonly skipped: ReadonlyArray<MigrationName>
  /** PostgreSQL's estimate of the rows of each table a pending statement locks. */
  readonly tableRows: Readonly<Record<string, number>>
}

const parse = (key: string): MigrationName => {
  const m = /^(\d+)_(.+)$/.exec(key)
  return { id: Number(m?.[1] ?? Number.NaN), name: m?.[2] ?? key }
}

/**
 * The statements a migration sends, in order, without sending them: each is recorded as compiled
 * and replaced by a statement that reads nothing. Parameters, rare in migrations, follow the
 * statement as a comment.
 */
export const statementsOf = <E>(
  migration: Effect.Effect<void, E, SqlClient.SqlClient>
): Effect.Effect<ReadonlyArray<string>, E, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sent = yield* Ref.make<ReadonlyArray<string>>([])
    yield* migration.pipe(
      Statement.withTransformer((statement, sql) =>
        Effect.as(
          Ref.update(sent, (all) => {
            const [text, params] = statement.compile()
            return [...all, params.length === 0 ? text : `${text}\n-- parameters: ${JSON.stringify(params)}`]
          }),
          sql`select 1 where false`
        )
      )
    )
    return (yield* Ref.get(sent)).flatMap(split)
  })

/** The migrations recorded in the ops-db's `ccat_migrations` (none on an empty database). */
export const appliedMigrations: Effect.Effect<ReadonlyArray<MigrationName>, SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [exists] = yield* sql<{ present: boolean }>`select to_regclass(${Migrations.table}) is not null as present`
  if (exists?.present !== true) return []
  const rows = yield* sql<{ id: number; name: string }>`select migration_id as id, name from ${sql(Migrations.table)} order by migration_id`
  return rows.map((r) => ({ id: Number(r.id), name: r.name }))
})

/** Judges one migration of this release by its recorded statements and any review of it. */
export const judgeMigration = (key: string) =>
  statementsOf(Migrations.migrations[key]!).pipe(
    // a migration that reads a row and uses it throws on the empty answer: say which one, not a stack
    Effect.catchAllCause((cause) => Effect.fail(new MigrationPlanError({ migration: key, cause: Cause.squash(cause) }))),
    Effect.map((statements): PlannedMigration => {
      const d = digest(statements)
      const review = reviewed.get(key)
      const judged = judge(statements, review?.digest === d ? review : undefined)
      return {
        ...parse(key),
        digest: d,
        staleReview: review !== undefined && review.digest !== d,
        step: contractSteps(judged).length > 0 ? "contract" : "expand",
        statements: judged
      }
    })
  )

/** A short digest of a migration's statements, so a review names exactly what it read. */
export const digest = (statements: ReadonlyArray<string>): string =>
  createHash("sha256").update(statements.join("\n;\n")).digest("hex").slice(0, 16)

/** What `ccat migrate` would apply to the connected ops-db, judged; changes nothing. */
export const plan: Effect.Effect<Plan, SqlError | MigrationPlanError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const applied = yield* appliedMigrations
  const latest = applied.reduce((max, m) => Math.max(max, m.id), 0)
  const done = new Set(applied.map((m) => m.id))
  const known = Object.keys(Migrations.migrations).sort()
  const pendingKeys = known.filter((k) => parse(k).id > latest)
  const skipped = known.map(parse).filter((m) => m.id < latest && !done.has(m.id))
  const pending: Array<PlannedMigration> = []
  for (const key of pendingKeys) pending.push(yield* judgeMigration(key))
  const tables = [...new Set(pending.flatMap((m) => m.statements.flatMap((s) => s.locks.map((l) => l.on))))]
  const rows = tables.length === 0
    ? []
    : yield* sql<{ relname: string; rows: number }>`
        select c.relname, greatest(c.reltuples, 0)::bigint as rows from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = current_schema() and c.relkind in ('r', 'p') and c.relname in ${sql.in(tables)}`
  return { applied, pending, skipped, tableRows: Object.fromEntries(rows.map((r) => [r.relname, Number(r.rows)])) }
})
