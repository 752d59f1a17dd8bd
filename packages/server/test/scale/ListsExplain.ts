/**
 * Query plans of the statements code really runs: a statement transformer records every
 * statement (its SQL and parameters) while armed, and `explain` asks PostgreSQL for the plan of
 * each with `EXPLAIN (ANALYZE, FORMAT JSON)`, inside a transaction that is rolled back, so a
 * planner's claims are measured without being made. The summary names the tables read by a
 * sequential scan and the rows every scan touched (returned plus filtered out, times loops):
 * what a plan test asserts, never a timing.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** One statement as it was sent. */
export interface Recorded {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

/** Records statements while armed. */
export class Recorder {
  private armed = false
  readonly statements: Array<Recorded> = []
  readonly transformer: Statement.Statement.Transformer = (self) =>
    Effect.sync(() => {
      if (this.armed) {
        const [sql, params] = self.compile()
        this.statements.push({ sql, params })
      }
      return self
    })
  /** The statements an effect ran, recorded while it ran. */
  readonly during = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        this.statements.length = 0
        this.armed = true
      }),
      () => Effect.map(effect, (a) => ({ result: a, statements: [...this.statements] })),
      () =>
        Effect.sync(() => {
          this.armed = false
        })
    )
  /** The transformer for a layer (a server's handlers inherit it) or an effect. */
  readonly layer = Layer.suspend(() => Statement.setTransformer(this.transformer))
}

/** The tables that grow with the catalog: none of them may be read whole. */
export const bigTables = [
  "raw_data_file",
  "physical_copy",
  "raw_data_package",
  "event_log",
  "executed_obs_unit",
  "data_transfer",
  "data_transfer_package",
  "data_transfer_package_member"
] as const

interface PlanNode {
  readonly "Node Type": string
  readonly "Relation Name"?: string
  readonly "Index Name"?: string
  readonly "Plan Rows"?: number
  readonly "Actual Rows"?: number
  readonly "Actual Loops"?: number
  readonly "Rows Removed by Filter"?: number
  readonly "Rows Removed by Index Recheck"?: number
  readonly Plans?: ReadonlyArray<PlanNode>
}

/** What one statement's plan does to the big tables. */
export interface PlanSummary {
  readonly sql: string
  /** Big tables holding more than `seqScanRows` rows that the plan read by a sequential scan. */
  readonly seqScans: ReadonlyArray<string>
  /** Rows (and bitmap index entries) of big tables the scans touched. */
  readonly rowsTouched: number
  /** Index names the plan uses. */
  readonly indexes: ReadonlyArray<string>
  readonly plan: unknown
}

/** A partition of the event log (migration 0018) is the event log, as far as the contract goes. */
export const tableOf = (relation: string): string => /^event_log_(y\d{4}|default)$/.test(relation) ? "event_log" : relation

const isBig = (relation: string | undefined) => relation !== undefined && (bigTables as ReadonlyArray<string>).includes(tableOf(relation))

/**
 * A table is read whole legitimately only while it is small: PostgreSQL rightly prefers one pass
 * over a few thousand rows to an index. Above this many rows a sequential scan is a finding.
 */
export const seqScanRows = 50_000

const summarize = (
  sqlText: string,
  root: PlanNode,
  plan: unknown,
  large: ReadonlySet<string>,
  indexOf: ReadonlyMap<string, string>
): PlanSummary => {
  const seqScans: Array<string> = []
  const indexes: Array<string> = []
  let rowsTouched = 0
  const walk = (node: PlanNode) => {
    const relation = node["Relation Name"]
    if (node["Index Name"] !== undefined) indexes.push(node["Index Name"])
    // A bitmap index scan names its index, not its table: its entries are rows touched too.
    const bitmapOfBig = node["Node Type"] === "Bitmap Index Scan" && isBig(indexOf.get(node["Index Name"] ?? ""))
    if (isBig(relation) || bitmapOfBig) {
      // a partition (of the event log) is held to its own size
      if (node["Node Type"] === "Seq Scan" && large.has(relation!)) seqScans.push(relation!)
      const loops = node["Actual Loops"] ?? 1
      const rows = node["Actual Rows"] ?? node["Plan Rows"] ?? 0
      rowsTouched += (rows + (node["Rows Removed by Filter"] ?? 0) + (node["Rows Removed by Index Recheck"] ?? 0)) * loops
    }
    for (const child of node.Plans ?? []) walk(child)
  }
  walk(root)
  return { sql: sqlText, seqScans, rowsTouched: Math.round(rowsTouched), indexes, plan }
}

/** Statements worth a plan: reads and writes of the ops-db's own tables (not the job engine's, not DDL). */
export const planned = (s: Recorded): boolean => {
  const text = s.sql.trim().toLowerCase()
  // a union of parenthesised selects starts with its first parenthesis
  return /^[(\s]*(select|with|update|insert|delete)\b/.test(text) && !/\bpgboss\b|"pgboss"/.test(text) &&
    !/pg_advisory|set transaction/.test(text)
}

/** Whether a statement writes (an insert, update or delete, at its top or in a CTE). */
const writes = (s: Recorded): boolean => /\b(insert\s+into|update\s+\S+\s+set|delete\s+from)\b/i.test(s.sql)

/** The executed plan of each statement, in one transaction that is rolled back. */
export const explain = (statements: ReadonlyArray<Recorded>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const out: Array<PlanSummary> = []
    const sizes = yield* sql<{ relname: string; rows: number }>`
      select c.relname, c.reltuples::float8 as rows
      from pg_class c left join pg_inherits i on i.inhrelid = c.oid left join pg_class p on p.oid = i.inhparent
      where c.relkind = 'r' and coalesce(p.relname, c.relname) in ${sql.in([...bigTables])}`.pipe(Statement.withTransformerDisabled)
    const large = new Set(sizes.filter((t) => t.rows > seqScanRows).map((t) => t.relname))
    const indexes = yield* sql<{ indexname: string; tablename: string }>`
      select indexname, tablename from pg_indexes`.pipe(Statement.withTransformerDisabled)
    const indexOf = new Map(indexes.map((i) => [i.indexname, tableOf(i.tablename)]))
    const rollback = { rollback: true } as const
    yield* sql.withTransaction(
      Effect.gen(function* () {
        for (const s of statements.filter(planned)) {
          // A write is planned, not run again (the code already made it, and a replay could
          // collide with it): its rows are the planner's estimates.
          const analyze = !writes(s)
          const rows = yield* sql.unsafe<Record<string, unknown>>(
            `explain (${analyze ? "analyze, " : ""}format json) ${s.sql}`,
            s.params as Array<any>
          )
          const doc = Object.values(rows[0])[0] as ReadonlyArray<{ Plan: PlanNode }>
          out.push(summarize(s.sql, doc[0].Plan, doc, large, indexOf))
        }
        return yield* Effect.fail(rollback)
      })
    ).pipe(
      Effect.either,
      Effect.flatMap((r) => r._tag === "Left" && (r.left as { rollback?: boolean }).rollback !== true ? Effect.fail(r.left) : Effect.void),
      Statement.withTransformerDisabled
    )
    return out
  })

/** A one-line description of a summary for assertion messages. */
export const describe = (p: PlanSummary): string => {
  const top = (p.plan as ReadonlyArray<{ readonly "Execution Time"?: number; readonly "Planning Time"?: number }>)[0]
  const times = top?.["Execution Time"] === undefined
    ? ""
    : `, executed in ${top["Execution Time"].toFixed(2)} ms, planned in ${(top["Planning Time"] ?? 0).toFixed(2)} ms`
  return `${p.sql.replace(/\s+/g, " ").slice(0, 300)} — seq scans: [${p.seqScans.join(", ")}], rows touched: ${p.rowsTouched}, indexes: [${
    p.indexes.join(", ")
  }]${times}`
}
