/**
 * Query plans as test evidence: runs an effect while recording every SQL statement it sends
 * (`Statement.withTransformer`), then runs `EXPLAIN (ANALYZE, FORMAT JSON)` of each recorded
 * read and reports, per statement, the scans it did and the rows each scan touched (rows
 * returned plus rows removed by filters, times loops). A test then asserts the contract:
 * no sequential scan over the catalog's big tables, and a bound on the rows touched, never a
 * time.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

/** One recorded statement. */
export interface Recorded {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

/** One scan node of a plan. */
export interface Scan {
  readonly node: string
  readonly relation: string
  readonly index: string | undefined
  /** Rows the node read: returned plus removed by its filters, over all its loops. */
  readonly touched: number
}

/** A statement's plan, summed up. */
export interface PlanSummary {
  readonly sql: string
  readonly scans: ReadonlyArray<Scan>
  readonly touched: number
  /** The executor's own time, for reading (never for asserting). */
  readonly ms: number
}

/** Runs `effect`, recording every statement it sends. */
export const record = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const recorded: Array<Recorded> = []
    const value = yield* effect.pipe(
      Statement.withTransformer((statement) =>
        Effect.sync(() => {
          const [sql, params] = statement.compile()
          recorded.push({ sql, params })
          return statement
        })
      )
    )
    return { value, recorded }
  })

type Node = Record<string, unknown> & { Plans?: ReadonlyArray<Node> }

const scansOf = (node: Node, out: Array<Scan>) => {
  const type = String(node["Node Type"])
  if (type.includes("Scan") && node["Relation Name"] !== undefined) {
    const loops = Number(node["Actual Loops"] ?? 1)
    const rows = Number(node["Actual Rows"] ?? 0) + Number(node["Rows Removed by Filter"] ?? 0) +
      Number(node["Rows Removed by Index Recheck"] ?? 0)
    // A partition of the event log (migration 0018) counts as the event log, but for a pass over
    // one that holds nothing (a year ahead, the default), which costs nothing.
    const raw = String(node["Relation Name"])
    const relation = type === "Seq Scan" && rows === 0 ? raw : raw.replace(/^event_log_(y\d{4}|default)$/, "event_log")
    out.push({ node: type, relation, index: node["Index Name"] as string | undefined, touched: rows * loops })
  }
  for (const child of node.Plans ?? []) scansOf(child, out)
}

/** EXPLAIN ANALYZE of every recorded read (`select` or `with`); other statements are skipped. */
export const explain = (recorded: ReadonlyArray<Recorded>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const out: Array<PlanSummary> = []
    for (const r of recorded) {
      if (!/^\s*(select|with)\b/i.test(r.sql)) continue
      const rows = yield* sql.unsafe<Record<string, unknown>>(`explain (analyze, format json) ${r.sql}`, r.params as Array<unknown>)
      const raw = Object.values(rows[0]!)[0]
      const plan = (typeof raw === "string" ? JSON.parse(raw) : raw)[0].Plan as Node
      const scans: Array<Scan> = []
      scansOf(plan, scans)
      out.push({
        sql: r.sql.replace(/\s+/g, " ").slice(0, 160),
        scans,
        touched: scans.reduce((a, s) => a + s.touched, 0),
        ms: Number(plan["Actual Total Time"] ?? 0)
      })
    }
    return out
  })

/** The plans' breaches of the contract: sequential scans over `big` tables, or more than `maxTouched` rows read by one statement. */
export const breaches = (plans: ReadonlyArray<PlanSummary>, big: ReadonlyArray<string>, maxTouched: number): ReadonlyArray<string> =>
  plans.flatMap((p) => [
    ...p.scans.filter((s) => s.node === "Seq Scan" && big.includes(s.relation)).map((s) =>
      `sequential scan of ${s.relation} (${s.touched} rows) in: ${p.sql}`
    ),
    ...(p.touched > maxTouched
      ? [`${p.touched} rows touched (${p.scans.map((s) => `${s.relation}:${s.touched}`).join(", ")}) in: ${p.sql}`]
      : [])
  ])

/** The catalog's tables that grow with it: never scanned whole by a status or metrics read. */
export const bigTables = [
  "raw_data_file",
  "physical_copy",
  "event_log",
  "raw_data_package",
  "executed_obs_unit",
  "data_transfer_package_member"
]
