/**
 * Statements a bench's processes ran, read from PostgreSQL's own log (`log_statement = all`,
 * each line prefixed with its time and `application_name`), so a bench tells apart what each
 * process sent and when without touching the code it measures.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"

/** One logged statement: when PostgreSQL logged it and its kind (its first words). */
export interface Logged {
  readonly at: number
  readonly kind: string
}

/** Sets the log line prefix this module parses and logs every statement run in database `name` (on an admin connection). */
export const logAll = (name: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.all([
      sql.unsafe(`alter system set log_line_prefix = '%m|%a|'`),
      sql.unsafe(`select pg_reload_conf()`),
      sql.unsafe(`alter database ${name} set log_statement = 'all'`)
    ], { discard: true }))

/** Collects the log's statements per application; `onLog` is EmbeddedDatabase's log callback. */
export const collector = () => {
  const byApp = new Map<string, Array<Logged>>()
  let continued: { app: string; at: number } | undefined
  const onLog = (line: string) => {
    // a statement that starts with a line break goes on in the log's next line
    const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \w+)\|([^|]*)\|.*LOG:\s+(?:statement|execute [^:]*):\s*(.*)$/.exec(line)
    const waiting = continued
    continued = undefined
    if (m === null && (waiting === undefined || line.trim() === "")) return
    const app = m === null ? waiting!.app : m[2]!
    const at = m === null ? waiting!.at : Date.parse(m[1]!.replace(" ", "T").replace(/ (UTC|GMT)$/, "Z"))
    const text = (m === null ? line : m[3]!).replace(/\s+/g, " ").trim()
    if (text === "") return void (continued = { app, at })
    const kind = /^(begin|commit|rollback|savepoint|release|select pg_advisory_\w+|listen|notify)/i.exec(text)?.[1]?.toLowerCase() ??
      text.slice(0, 70)
    const list = byApp.get(app) ?? []
    list.push({ at, kind })
    byApp.set(app, list)
  }
  return {
    onLog,
    /** The statements `app` ran, optionally only those logged by `until` (ms since the epoch). */
    of: (app: string, until?: number): ReadonlyArray<Logged> => (byApp.get(app) ?? []).filter((s) => until === undefined || s.at <= until),
    /** Prints how many statements `app` ran by `until`, and the most frequent kinds. */
    print: (app: string, title: string, until?: number) => {
      const list = (byApp.get(app) ?? []).filter((s) => until === undefined || s.at <= until)
      const kinds = new Map<string, number>()
      for (const s of list) kinds.set(s.kind, (kinds.get(s.kind) ?? 0) + 1)
      console.log(`${title}: ${list.length} statements`)
      for (const [kind, n] of [...kinds.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
        console.log(`  ${String(n).padStart(5)}  ${kind}`)
      }
    }
  }
}
