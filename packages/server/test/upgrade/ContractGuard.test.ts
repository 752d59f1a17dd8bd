/**
 * Contract steps are applied only when the operator says the previous release is stopped: the
 * real `ccat migrate` refuses them naming the migration and the step, and changes nothing;
 * `ccat serve` refuses to start on them with the command to run; `ccat migrate
 * --previous-release-stopped` applies them; a new ops-db takes every step without asking.
 */
import { Migrations } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import * as ContractGuard from "../../src/upgrade/ContractGuard.js"
import * as MigrationPlan from "../../src/upgrade/MigrationPlan.js"
import { ccat } from "../support.js"
import { migrateTo, run, Url } from "./UpgradeDatabase.js"

/** Everything a refused apply must leave as it was: the schema's objects and the recorded migrations. */
const schemaShape = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [shape] = yield* sql<{ relations: string; functions: number; labels: number }>`
    select (select string_agg(c.relname || ':' || c.relkind::text, ',' order by c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public') as relations,
      (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public') as functions,
      (select count(*)::int from pg_enum) as labels`
  const migrations = yield* sql<{ id: number }>`select migration_id as id from ccat_migrations order by migration_id`
  return { ...shape, migrations: migrations.map((m) => Number(m.id)) }
})

const all = Object.keys(Migrations.migrations).sort()

/** The first migration of this release the rules call a contract step (after the first, so that one is applied before it). */
const firstContract = Effect.gen(function* () {
  for (const key of all.slice(1)) {
    const m = yield* MigrationPlan.judgeMigration(key)
    const step = m.statements.find((s) => s.step === "contract")
    if (step !== undefined) return { key, step }
  }
  return yield* Effect.die(new Error("no migration of this release has a contract step to test the guard with"))
})

const exited = (c: ReturnType<typeof ccat>) => Effect.promise(() => c.exited)

describe("contract steps", () => {
  it(
    "are refused by ccat migrate and ccat serve with the migration and the step named, changing nothing, and applied with --previous-release-stopped",
    () =>
      run(Effect.gen(function* () {
        const { key, step } = yield* firstContract
        yield* migrateTo(all.filter((k) => k < key))
        const url = Redacted.value(yield* Url)
        const before = yield* schemaShape

        const refused = ccat(["migrate"], { DATABASE_URL: url })
        expect(yield* exited(refused), refused.output()).toBe(1)
        expect(refused.output()).toContain(`ccat: refusing to apply ${key}`)
        expect(refused.output()).toContain(`  ${key}: ${step.summary} (`)
        expect(refused.output()).toContain("nothing was applied")
        expect(refused.output()).toContain(`ccat migrate ${ContractGuard.previousReleaseStoppedFlag}`)
        expect(refused.output()).not.toMatch(/\n\s+at /)
        expect(yield* schemaShape).toEqual(before)

        // a start applies no contract step either: it cannot know the previous release is stopped
        const serve = ccat(["serve", "--port", "0"], { DATABASE_URL: url })
        expect(yield* exited(serve), serve.output()).toBe(1)
        expect(serve.output()).toMatch(new RegExp(`^ccat: not starting: pending migrations? ${key}`, "m"))
        expect(serve.output()).toContain(`run \`ccat migrate ${ContractGuard.previousReleaseStoppedFlag}\`, then start this release`)
        expect(yield* schemaShape).toEqual(before)

        const confirmed = ccat(["migrate", ContractGuard.previousReleaseStoppedFlag, "--json"], { DATABASE_URL: url })
        expect(yield* exited(confirmed), confirmed.output()).toBe(0)
        const applied = JSON.parse(confirmed.output().trim().split("\n").at(-1)!) as {
          applied: ReadonlyArray<{ id: number; name: string }>
        }
        expect(applied.applied.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)).toEqual(all.filter((k) => k >= key))
        expect((yield* MigrationPlan.plan).pending).toEqual([])
      })),
    120_000
  )

  it("on a new ops-db are all applied at start: no release runs on it yet", () =>
    run(Effect.gen(function* () {
      expect(yield* ContractGuard.pendingContractSteps).toEqual([])
      const applied = yield* ContractGuard.migrate({ caller: "start", previousReleaseStopped: false })
      expect(applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`)).toEqual(all)
    })))

  it("a start beside another process migrating the ops-db waits for it, and then has nothing to refuse", () =>
    run(Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const { key } = yield* firstContract
      yield* migrateTo(all.filter((k) => k < key))
      // the other process: its transaction holds the migrations' table, then applies the rest
      const holding = yield* Deferred.make<void>()
      const go = yield* Deferred.make<void>()
      const other = yield* Effect.fork(sql.withTransaction(Effect.gen(function* () {
        yield* sql`lock table ccat_migrations in row exclusive mode`
        yield* Deferred.succeed(holding, undefined)
        yield* Deferred.await(go)
        yield* Migrations.run
      })))
      yield* Deferred.await(holding)
      const start = yield* Effect.fork(ContractGuard.migrate({ caller: "start", previousReleaseStopped: false }))
      yield* Deferred.succeed(go, undefined)
      yield* Fiber.join(other)
      expect(yield* Fiber.join(start)).toEqual([])
      expect((yield* MigrationPlan.plan).pending).toEqual([])
    })), 60_000)

  it("a start refuses them even when told the previous release is stopped: only ccat migrate may be told", () =>
    run(Effect.gen(function* () {
      const { key } = yield* firstContract
      yield* migrateTo(all.filter((k) => k < key))
      const before = yield* schemaShape
      const error = yield* Effect.flip(ContractGuard.migrate({ caller: "start", previousReleaseStopped: true }))
      expect(error._tag).toBe("ContractStepsPending")
      expect(error.message).toContain(key)
      expect(yield* schemaShape).toEqual(before)
    })))
})
