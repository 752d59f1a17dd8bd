/**
 * Contract steps are applied only with the previous release stopped (docs/ops-db.md,
 * "Upgrades"). `ccat migrate` refuses a pending migration with a contract step unless the
 * operator confirms the previous release is stopped; every command that migrates at start
 * (`ccat serve`, `ccat worker`, ...) refuses it always, since nothing there says the previous
 * release's workers are gone. An ops-db no release has migrated yet has no previous release to
 * break: every step of it is applied.
 */
import { Migrations } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as MigrationPlan from "./MigrationPlan.js"

/** The `ccat migrate` option by which an operator says no process of the previous release runs. */
export const previousReleaseStoppedFlag = "--previous-release-stopped"

/** One contract step of a pending migration, as the refusal names it. */
export interface PendingContractStep {
  /** The migration, `NNNN_name`. */
  readonly migration: string
  readonly summary: string
  /** The rule or the marker that makes it a contract step. */
  readonly why: string
}

/** Who asked to migrate: `ccat migrate` may be told the previous release is stopped; a start may not. */
export type Caller = "migrate" | "start"

/** Pending migrations have contract steps and nobody said the previous release is stopped. Nothing was applied. */
export class ContractStepsPending extends Data.TaggedError("ContractStepsPending")<{
  readonly steps: ReadonlyArray<PendingContractStep>
  readonly caller: Caller
}> {
  override get message(): string {
    const migrations = [...new Set(this.steps.map((s) => s.migration))]
    const head = this.caller === "migrate"
      ? `refusing to apply ${
        migrations.join(", ")
      }: contract steps need every process of the previous release stopped, and nothing was applied:`
      : `not starting: ${migrations.length === 1 ? "pending migration" : "pending migrations"} ${migrations.join(", ")} ${
        migrations.length === 1 ? "has" : "have"
      } contract steps, which are applied only by \`ccat migrate ${previousReleaseStoppedFlag}\`; nothing was applied:`
    const next = this.caller === "migrate"
      ? `stop the previous release's server and workers, then run \`ccat migrate ${previousReleaseStoppedFlag}\` (\`ccat migrate --check\` shows every step)`
      : `stop the previous release's server and workers, run \`ccat migrate ${previousReleaseStoppedFlag}\`, then start this release (\`ccat migrate --check\` shows every step)`
    return [head, ...this.steps.map((s) => `  ${s.migration}: ${s.summary} (${s.why})`), next].join("\n")
  }
}

const key = (m: MigrationPlan.MigrationName) => `${String(m.id).padStart(4, "0")}_${m.name}`

/** The contract steps the pending migrations would run on an ops-db a release already migrated; none on a new one. */
export const pendingContractSteps: Effect.Effect<
  ReadonlyArray<PendingContractStep>,
  SqlError | MigrationPlan.MigrationPlanError,
  SqlClient.SqlClient
> = Effect.gen(function* () {
  // a new ops-db: no release runs on it, and judging every migration would cost each start
  if ((yield* MigrationPlan.appliedMigrations).length === 0) return []
  const plan = yield* MigrationPlan.plan
  return plan.pending.flatMap((m) =>
    m.statements
      .filter((s) => s.step === "contract")
      .map((s) => ({
        migration: key(m),
        summary: s.summary,
        why: s.marker !== undefined ? `${s.marker.kind}: ${s.marker.reason}` : s.rule ?? "contract step"
      }))
  )
})

/** Whether another session holds a lock on the migrations' table: the Migrator takes one in each migration's transaction. */
const migratingElsewhere = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<
      { busy: boolean }
    >`select exists (select 1 from pg_locks where locktype = 'relation' and relation = to_regclass(${Migrations.table}) and pid <> pg_backend_pid()) as busy`,
    (r) => r[0]?.busy === true
  ))

/** How long a start waits for another process's migrations before judging what is left. */
export const settleBound: Duration.Duration = Duration.minutes(15)

/**
 * The contract steps pending once no other process is migrating. Processes started together on a
 * new ops-db (a server and its workers) migrate it together, one migration at a time: one that
 * looks while another is half-way sees contract steps that other applies a moment later. So
 * while another session migrates, or the applied migrations still change, the look is taken
 * again, for at most `settleBound`.
 */
const settledContractSteps = Effect.gen(function* () {
  const deadline = Date.now() + Duration.toMillis(settleBound)
  let steps = yield* pendingContractSteps
  while (steps.length > 0 && Date.now() < deadline) {
    const before = (yield* MigrationPlan.appliedMigrations).length
    yield* Effect.sleep("500 millis")
    if (!(yield* migratingElsewhere) && (yield* MigrationPlan.appliedMigrations).length === before) break
    steps = yield* pendingContractSteps
  }
  return steps
})

/**
 * Applies the pending migrations (as `Migrations.run`), after refusing, with nothing applied,
 * when any has a contract step and `previousReleaseStopped` is not set (a start is never told
 * so). What another process is migrating at the moment is waited for first.
 */
export const migrate = (options: { readonly caller: Caller; readonly previousReleaseStopped: boolean }) =>
  Effect.gen(function* () {
    if (!options.previousReleaseStopped || options.caller === "start") {
      const steps = yield* settledContractSteps
      if (steps.length > 0) return yield* new ContractStepsPending({ steps, caller: options.caller })
    }
    return yield* Migrations.run
  })
