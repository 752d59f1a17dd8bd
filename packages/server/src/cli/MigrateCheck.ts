/**
 * `ccat migrate --check`: what `ccat migrate` would do to the configured ops-db, changing
 * nothing. For each pending migration: expand (the previous release's workers keep running) or
 * contract (stop them first), each statement's summary and locks with the locked table's
 * estimated rows, and with `--sql` the statements themselves (docs/ops-db.md, "Upgrades").
 */
import { OpsDb } from "@ccat/core/node"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Main from "../Main.js"
import { ConfigLoadError, load, type LoadOptions } from "../ServerConfig.js"
import * as MigrationPlan from "../upgrade/MigrationPlan.js"
import type { Lock } from "../upgrade/MigrationRules.js"

const rows = (n: number | undefined) => (n === undefined ? "not there yet" : `~${n.toLocaleString("en-US")} rows`)

// an index or a type has no rows to count: only a table's size says how long a lock may be held
const lockText = (lock: Lock, tableRows: Readonly<Record<string, number>>) =>
  lock.on.includes(" ") ? `${lock.mode} on ${lock.on}` : `${lock.mode} on ${lock.on} (${rows(tableRows[lock.on])})`

const isPostgresUrl = (url: string) => {
  try {
    const u = new URL(url)
    return (u.protocol === "postgres:" || u.protocol === "postgresql:") && u.hostname !== ""
  } catch {
    return false
  }
}

/** The plan as people read it. */
export const render = (plan: MigrationPlan.Plan, target: string, withSql: boolean): string => {
  const lines: Array<string> = []
  const newest = plan.applied.at(-1)
  lines.push(
    `ops-db ${target}: ${plan.applied.length} migrations applied` +
      (newest === undefined ? "" : `, the newest ${String(newest.id).padStart(4, "0")}_${newest.name}`)
  )
  for (const s of plan.skipped) {
    lines.push(
      `warning: ${
        String(s.id).padStart(4, "0")
      }_${s.name} was never applied and is numbered below the newest applied one: the Migrator will never run it`
    )
  }
  if (plan.pending.length === 0) {
    lines.push("nothing to apply: the ops-db is up to date")
    return lines.join("\n")
  }
  const contract = plan.pending.filter((m) => m.step === "contract")
  lines.push(
    `${plan.pending.length} pending (${
      plan.pending.length - contract.length
    } expand, ${contract.length} contract), applied oldest first, each in its own transaction:`
  )
  for (const m of plan.pending) {
    lines.push("")
    lines.push(
      `${String(m.id).padStart(4, "0")}_${m.name}: ${
        m.step === "expand"
          ? "expand: the previous release's workers keep running"
          : "CONTRACT: stop every process of the previous release first"
      }`
    )
    if (m.staleReview) {
      lines.push(
        `  warning: its review in MigrationRules.reviewed was made for other statements (digest now ${m.digest}); the rules judge it alone`
      )
    }
    const said = new Set<string>()
    for (const s of m.statements) {
      const tag = s.marker !== undefined
        ? `${s.marker.kind}: ${s.marker.reason}`
        : s.step === "contract"
        ? `contract: ${s.rule}`
        : undefined
      lines.push(`  ${s.summary}${tag === undefined ? "" : `  [${tag}]`}`)
      for (const l of s.locks) lines.push(`      lock ${lockText(l, plan.tableRows)}`)
      // a note said once per migration: twenty triggers need not say twenty times what a trigger does
      for (const n of s.notes) {
        if (said.has(n)) continue
        lines.push(`      note: ${n}`)
        said.add(n)
      }
      if (withSql) lines.push(...s.sql.split("\n").map((l) => `      | ${l}`))
    }
  }
  lines.push("")
  lines.push(
    "nothing was changed; " +
      (contract.length > 0 && plan.applied.length > 0
        ? "stop every process of the previous release, then `ccat migrate --previous-release-stopped` applies these (plain `ccat migrate` and a start refuse contract steps)"
        : "`ccat migrate` applies these" + (plan.applied.length > 0 ? ", while the previous release keeps running" : ""))
  )
  return lines.join("\n")
}

/** The plan for scripts: every statement with its SQL, step, marker and locks. */
export const json = (plan: MigrationPlan.Plan, target: string) => ({
  target,
  applied: plan.applied,
  skipped: plan.skipped,
  contract: plan.pending.some((m) => m.step === "contract"),
  pending: plan.pending.map((m) => ({
    id: m.id,
    name: m.name,
    step: m.step,
    digest: m.digest,
    staleReview: m.staleReview,
    statements: m.statements.map((s) => ({
      summary: s.summary,
      step: s.step,
      rule: s.rule,
      marker: s.marker,
      locks: s.locks.map((l) => ({ ...l, estimatedRows: plan.tableRows[l.on] ?? null })),
      notes: s.notes,
      sql: s.sql
    }))
  }))
})

/** Connects to the configured ops-db without migrating it and prints what `ccat migrate` would do. */
export const run = (options: LoadOptions & { readonly json: boolean; readonly sql: boolean }) =>
  Effect.gen(function* () {
    const config = yield* load(options)
    // Said before connecting: a driver's own words for a malformed URL ("ENOTFOUND base") name no setting.
    if (config.databaseUrl !== undefined && !isPostgresUrl(Redacted.value(config.databaseUrl))) {
      return yield* new ConfigLoadError({
        file: config.configFile,
        problems: ["DATABASE_URL (or database.url): is not a PostgreSQL URL; write postgres://USER:PASSWORD@HOST:PORT/DATABASE"]
      })
    }
    yield* Effect.gen(function* () {
      const db = yield* OpsDb.OpsDb
      const target = `${db.kind} ${db.target}`
      const plan = yield* MigrationPlan.plan
      yield* Console.log(options.json ? JSON.stringify(json(plan, target)) : render(plan, target, options.sql))
    }).pipe(Effect.provide(Main.opsDbLayer(config, false)))
  })
