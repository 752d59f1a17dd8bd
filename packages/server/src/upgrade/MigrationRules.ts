/**
 * The expand/contract rules (docs/ops-db.md, "Upgrades"), applied to a migration's statements.
 * During a rolling upgrade the previous release's workers keep running against the new schema,
 * so a migration of a release may only *expand* it: add tables, nullable or defaulted columns,
 * indexes, enum values, functions, triggers, views, constraints on its own new columns, data
 * backfills. What removes or reshapes something the previous release reads or writes (a DROP, a
 * RENAME, a column's type, SET NOT NULL, a constraint on existing columns, a unique index on an
 * existing table) is a *contract* step: it ships in a later release, once no running code uses
 * what it removes, and it is applied with the previous release stopped.
 *
 * The rules read SQL text, not a parse tree: they know the statement forms our migrations use,
 * and anything else is a contract step until a person looks at it and says otherwise with a
 * marker comment before the statement: `-- ccat:contract <why>` (a contract step on purpose) or
 * `-- ccat:compatible <why>` (the rule is too strict here: the previous release keeps working).
 */
import { markers, split, splitTopLevel, stripComments } from "./SqlStatements.js"

/** Whether a statement can run while the previous release's workers run. */
export type Step = "expand" | "contract"

/** A lock a statement takes, in PostgreSQL's names for lock modes. */
export interface Lock {
  /** A table, or what the statement names when the table cannot be known from the text. */
  readonly on: string
  readonly mode:
    | "ACCESS SHARE"
    | "ROW EXCLUSIVE"
    | "SHARE UPDATE EXCLUSIVE"
    | "SHARE"
    | "SHARE ROW EXCLUSIVE"
    | "EXCLUSIVE"
    | "ACCESS EXCLUSIVE"
}

/** What the rules make of one statement. */
export interface Judged {
  /** The statement as the migration runs it, comments included. */
  readonly sql: string
  /** A short summary: "create table alert_incident", "alter table obs_unit: add column source_id". */
  readonly summary: string
  readonly step: Step
  /** Why the rules call it a contract step (absent for expand steps). */
  readonly rule?: string | undefined
  /** A marker comment that overrides the rules, with the reason it gives. */
  readonly marker?: { readonly kind: "contract" | "compatible"; readonly reason: string } | undefined
  readonly locks: ReadonlyArray<Lock>
  /** What an operator should know: a table rewrite, writes blocked while an index builds. */
  readonly notes: ReadonlyArray<string>
}

/** What a migration's statements create, which later statements of it may constrain freely. */
interface Created {
  readonly tables: Set<string>
  readonly columns: Set<string>
}

const name = (raw: string) => raw.replace(/"/g, "").replace(/^only /, "").toLowerCase()
const tableOf = (raw: string) => name(raw).replace(/^public\./, "")

/** Functions whose default makes ADD COLUMN rewrite the table (a stable or immutable default does not). */
const volatileDefault = /default\s+[^,]*\b(random|gen_random_uuid|uuid_generate_v4|clock_timestamp|nextval|timeofday)\s*\(/

const judgeAlterTable = (table: string, actions: string, created: Created): Omit<Judged, "sql" | "marker"> => {
  const own = created.tables.has(table)
  const contract: Array<string> = []
  const notes: Array<string> = []
  const summaries: Array<string> = []
  let mode = "SHARE UPDATE EXCLUSIVE" as Lock["mode"]
  const locks: Array<Lock> = []
  const strongest = (m: Lock["mode"]) => {
    const order: ReadonlyArray<Lock["mode"]> = [
      "ACCESS SHARE",
      "ROW EXCLUSIVE",
      "SHARE UPDATE EXCLUSIVE",
      "SHARE",
      "SHARE ROW EXCLUSIVE",
      "EXCLUSIVE",
      "ACCESS EXCLUSIVE"
    ]
    if (order.indexOf(m) > order.indexOf(mode)) mode = m
  }
  // columns first: a constraint of the same statement may name a column added beside it
  const parts = splitTopLevel(actions)
  for (const a of parts) {
    const add = /^add (?:column )?(?:if not exists )?("?[a-z_][a-z0-9_]*"?) /.exec(a)
    if (add !== null && !/^add (constraint|check|foreign key|unique|primary key|exclude)\b/.test(a)) {
      created.columns.add(`${table}.${name(add[1]!)}`)
    }
  }
  for (const a of parts) {
    const constraintColumns = () =>
      [...a.matchAll(/[a-z_][a-z0-9_]*/g)].map((m) => `${table}.${m[0]}`).filter((c) => created.columns.has(c))
    if (/^add (constraint|check|foreign key|unique|primary key|exclude)\b/.test(a)) {
      summaries.push(`add ${/^add constraint ("?[a-z0-9_]+"?)/.exec(a)?.[1] ?? "constraint"}`)
      const references = /\breferences ("?[a-z0-9_.]+"?)/.exec(a)
      if (references !== null) {
        locks.push({ on: tableOf(references[1]!), mode: "SHARE ROW EXCLUSIVE" })
        strongest("SHARE ROW EXCLUSIVE")
      } else strongest("ACCESS EXCLUSIVE")
      if (!own && constraintColumns().length === 0) {
        contract.push("a constraint on existing columns may refuse what the previous release writes")
      }
      if (/\bnot valid\b/.test(a)) notes.push("NOT VALID: rows already there are not checked until VALIDATE CONSTRAINT")
    } else if (/^add /.test(a)) {
      const column = /^add (?:column )?(?:if not exists )?("?[a-z_][a-z0-9_]*"?)/.exec(a)![1]!
      summaries.push(`add column ${name(column)}`)
      strongest("ACCESS EXCLUSIVE")
      if (!own && /\bnot null\b/.test(a) && !/\bdefault\b/.test(a) && !/\bgenerated\b/.test(a)) {
        contract.push(`column ${name(column)} is NOT NULL without a default: the previous release's inserts leave it out`)
      }
      if (volatileDefault.test(a)) notes.push(`column ${name(column)}'s volatile default rewrites the whole table under its lock`)
      const references = /\breferences ("?[a-z0-9_.]+"?)/.exec(a)
      if (references !== null) locks.push({ on: tableOf(references[1]!), mode: "SHARE ROW EXCLUSIVE" })
    } else if (/^alter (?:column )?("?[a-z_][a-z0-9_]*"?) (set default|set statistics|set storage|set \()/.test(a)) {
      summaries.push(a.split(" ").slice(0, 5).join(" "))
      strongest(/set default/.test(a) ? "ACCESS EXCLUSIVE" : "SHARE UPDATE EXCLUSIVE")
    } else if (/^alter (?:column )?("?[a-z_][a-z0-9_]*"?) (type|set data type) /.test(a)) {
      summaries.push(a.split(" ").slice(0, 4).join(" "))
      strongest("ACCESS EXCLUSIVE")
      contract.push("changes a column's type (and rewrites the table unless the types are binary-compatible)")
    } else if (/^alter (?:column )?("?[a-z_][a-z0-9_]*"?) set not null/.test(a)) {
      summaries.push(a)
      strongest("ACCESS EXCLUSIVE")
      if (!own) contract.push("SET NOT NULL refuses the previous release's rows that leave the column out")
    } else if (/^alter (?:column )?("?[a-z_][a-z0-9_]*"?) drop default/.test(a)) {
      summaries.push(a)
      strongest("ACCESS EXCLUSIVE")
      if (!own) contract.push("DROP DEFAULT: the previous release's inserts may rely on the default")
    } else if (/^validate constraint /.test(a)) {
      summaries.push(a)
      notes.push("VALIDATE CONSTRAINT reads the whole table, with writes going on")
    } else if (/^(set|reset) \(/.test(a)) {
      summaries.push(a.split(" ")[0]!.concat(" storage parameters"))
    } else if (/^(drop|rename)\b/.test(a)) {
      summaries.push(a.split(" ").slice(0, 4).join(" "))
      strongest("ACCESS EXCLUSIVE")
      // what this migration made, no release has used yet
      if (!own) contract.push(`${a.split(" ")[0]!.toUpperCase()} removes or renames what the previous release may use`)
    } else {
      summaries.push(a.split(" ").slice(0, 4).join(" "))
      strongest("ACCESS EXCLUSIVE")
      contract.push(`an ALTER TABLE action the rules do not know ("${a.slice(0, 60)}"): review it and mark it`)
    }
  }
  if (mode === "ACCESS EXCLUSIVE" && !own) notes.push(`blocks every read and write of ${table} while it runs (brief unless it rewrites)`)
  return {
    summary: `alter table ${table}: ${summaries.join(", ")}`,
    step: contract.length > 0 ? "contract" : "expand",
    rule: contract.length > 0 ? contract.join("; ") : undefined,
    locks: [{ on: table, mode }, ...locks],
    notes
  }
}

const expand = (summary: string, locks: ReadonlyArray<Lock> = [], notes: ReadonlyArray<string> = []) => ({
  summary,
  step: "expand" as const,
  rule: undefined,
  locks,
  notes
})
const contract = (summary: string, rule: string, locks: ReadonlyArray<Lock> = []) => ({
  summary,
  step: "contract" as const,
  rule,
  locks,
  notes: []
})

/**
 * A DO block runs code the rules cannot follow, so it is a contract step until marked; what it
 * shows of itself (the SQL statements in its body) still says which locks it takes and what it
 * removes, for the operator reading `ccat migrate --check`.
 */
const judgeDo = (body: string, created: Created): Omit<Judged, "sql" | "marker"> => {
  // what the block creates stays its own: a table it creates and swaps in was locked under that name first
  const scratch: Created = { tables: new Set(created.tables), columns: new Set(created.columns) }
  const inner = split(body)
    .map((p) => p.replace(/^(?:(?:declare\b.*?\bbegin|begin|then|else|loop|end if|end loop)\s+)+/, "").trim())
    .filter((p) => /^(create|alter|drop|lock|insert|update|delete|truncate)\b/.test(p))
    .map((p) => judgeText(p, scratch))
  const removes = inner.filter((j) => j.step === "contract").map((j) => j.summary)
  const locks = inner.flatMap((j) => j.locks).filter((l, i, all) => all.findIndex((o) => o.on === l.on && o.mode === l.mode) === i)
  return {
    summary: `do block${inner.length === 0 ? "" : `: ${inner.map((j) => j.summary).join("; ")}`}`,
    step: "contract",
    rule: `a DO block runs code the rules cannot follow${
      removes.length === 0 ? "" : `; it does ${removes.join("; ")}`
    }: review it and mark it`,
    locks,
    notes: []
  }
}

/** Judges one statement by its text; `created` collects what earlier statements of the migration made. */
const judgeText = (s: string, created: Created): Omit<Judged, "sql" | "marker"> => {
  let m: RegExpExecArray | null
  if (
    (m = /^create (unique )?index (concurrently )?(?:if not exists )?(?:"?[a-z0-9_]+"? )?on (only )?("?[a-z0-9_.]+"?)/.exec(s)) !== null
  ) {
    const table = tableOf(m[4]!)
    const own = created.tables.has(table)
    const locks: ReadonlyArray<Lock> = [{ on: table, mode: m[2] !== undefined ? "SHARE UPDATE EXCLUSIVE" : "SHARE" }]
    const index = /^create (?:unique )?index (?:concurrently )?(?:if not exists )?("?[a-z0-9_]+"?) on /.exec(s)?.[1]
    const summary = `create ${m[1] ?? ""}index ${m[2] ?? ""}${index === undefined ? "" : `${name(index)} `}on ${table}`.replace(/\s+/g, " ")
    if (m[1] !== undefined && !own) {
      return contract(summary, "a unique index on an existing table refuses rows the previous release may write", locks)
    }
    return expand(
      summary,
      locks,
      m[2] === undefined && !own ? [`blocks writes to ${table} while it builds; on a large table build it CONCURRENTLY beforehand`] : []
    )
  }
  if ((m = /^create (?:or replace )?(?:(?:temp|temporary|unlogged) )?table (?:if not exists )?("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    const table = tableOf(m[1]!)
    created.tables.add(table)
    const referenced = [...s.matchAll(/\breferences ("?[a-z0-9_.]+"?)/g)].map((r) => tableOf(r[1]!)).filter((t) => t !== table)
    return expand(`create table ${table}`, [...new Set(referenced)].map((on) => ({ on, mode: "SHARE ROW EXCLUSIVE" as const })))
  }
  if ((m = /^alter table (?:if exists )?(only )?("?[a-z0-9_.]+"?) (.*)$/.exec(s)) !== null) {
    return judgeAlterTable(tableOf(m[2]!), m[3]!, created)
  }
  if ((m = /^alter type ("?[a-z0-9_.]+"?) add value/.exec(s)) !== null) {
    return expand(
      `alter type ${name(m[1]!)}: add value`,
      [],
      ["the previous release must not meet the new value in rows it reads before it is stopped"]
    )
  }
  if (
    (m =
      /^drop (table|index|type|view|materialized view|function|procedure|trigger|schema|domain|sequence|column|constraint|extension|policy|rule)\b (?:concurrently )?(?:if exists )?("?[a-z0-9_.]+"?)(?: on ("?[a-z0-9_.]+"?))?/
        .exec(s)) !== null
  ) {
    const on = m[3] !== undefined ? tableOf(m[3]) : m[1] === "table" ? tableOf(m[2]!) : `${m[1]} ${name(m[2]!)}`
    if (m[1] === "table" && created.tables.has(on)) return expand(`drop table ${on}`, [], ["a table this migration made"])
    return contract(`drop ${m[1]} ${name(m[2]!)}`, "DROP removes what the previous release may use", [{ on, mode: "ACCESS EXCLUSIVE" }])
  }
  if ((m = /^create (?:or replace )?(?:constraint )?trigger ("?[a-z0-9_]+"?) .*? on ("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(
      `create trigger ${name(m[1]!)} on ${tableOf(m[2]!)}`,
      [{ on: tableOf(m[2]!), mode: "SHARE ROW EXCLUSIVE" }],
      ["the previous release's writes run the trigger too"]
    )
  }
  if ((m = /^create (or replace )?(function|procedure) ("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(
      `create ${m[1] ?? ""}${m[2]} ${name(m[3]!)}`,
      [],
      m[1] !== undefined ? ["a replaced body runs for the previous release's statements too"] : []
    )
  }
  if ((m = /^create (or replace )?(materialized )?view (?:if not exists )?("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(`create ${m[1] ?? ""}${m[2] ?? ""}view ${name(m[3]!)}`.replace(/\s+/g, " "))
  }
  if ((m = /^create statistics (?:if not exists )?("?[a-z0-9_.]+"?).* from ("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(`create statistics ${name(m[1]!)}`, [{ on: tableOf(m[2]!), mode: "SHARE UPDATE EXCLUSIVE" }])
  }
  if (
    (m = /^create (schema|extension|type|domain|sequence|aggregate|cast|collation|operator)\b(?: if not exists)? ("?[a-z0-9_.]+"?)?/.exec(
      s
    )) !== null
  ) {
    return expand(`create ${m[1]} ${m[2] !== undefined ? name(m[2]) : ""}`.trim())
  }
  if ((m = /^insert into ("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(`insert into ${tableOf(m[1]!)}`, [{ on: tableOf(m[1]!), mode: "ROW EXCLUSIVE" }])
  }
  if ((m = /^(?:with .*? )?update (?:only )?("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(
      `update ${tableOf(m[1]!)}`,
      [{ on: tableOf(m[1]!), mode: "ROW EXCLUSIVE" }],
      [`locks each row of ${tableOf(m[1]!)} it updates until the migration commits; batch it on a large table`]
    )
  }
  if ((m = /^(?:with .*? )?delete from (?:only )?("?[a-z0-9_.]+"?)/.exec(s)) !== null) {
    return expand(`delete from ${tableOf(m[1]!)}`, [{ on: tableOf(m[1]!), mode: "ROW EXCLUSIVE" }])
  }
  if ((m = /^lock (?:table )?(?:only )?("?[a-z0-9_.]+"?)(?: in ([a-z ]+?) mode)?/.exec(s)) !== null) {
    const mode = (m[2] ?? "access exclusive").toUpperCase() as Lock["mode"]
    return expand(`lock ${tableOf(m[1]!)} in ${mode} mode`, [{ on: tableOf(m[1]!), mode }])
  }
  if (/^(select|with|comment on|grant|analyze|set |reset |refresh materialized view concurrently)\b/.test(s)) {
    return expand(
      s.split(" ").slice(0, 4).join(" "),
      [],
      /^(select|with)\b/.test(s) ? ["takes whatever locks the functions it calls take"] : []
    )
  }
  if ((m = /^do (?:language [a-z]+ )?(\$[a-z_]*\$)(.*)\1/.exec(s)) !== null) return judgeDo(m[2]!, created)
  if (/^truncate\b/.test(s)) return contract(s.split(" ").slice(0, 3).join(" "), "TRUNCATE removes rows the previous release may use")
  if (/^alter (type|function|view|sequence|index|domain|schema|trigger)\b.* (rename|drop|owner to|set schema)\b/.test(s)) {
    return contract(s.split(" ").slice(0, 3).join(" "), "renames or removes what the previous release may use")
  }
  return contract(s.split(" ").slice(0, 3).join(" "), "a statement the rules do not know: review it and mark it")
}

/** A marker given for a whole migration, outside its SQL. */
export interface Review {
  readonly kind: "contract" | "compatible"
  readonly reason: string
  /** The digest of the statements reviewed (`MigrationPlan.digest`): a changed migration needs a new review. */
  readonly digest: string
}

/**
 * Migrations whose SQL carries no marker, judged by a person: the judgment stands for each of
 * their statements the rules call a contract step. A marker in the SQL is better (it travels
 * with the statement); this list is for migrations written without one.
 */
export const reviewed: ReadonlyMap<string, Review> = new Map([
  [
    "0018_history_partitions",
    {
      kind: "compatible",
      reason: "v0.1.0's code never calls ops_count_rebuild (0012 did, once), and a function of that name is made again at once; " +
        "the first DO block copies event_log into a partitioned event_log_next with the same columns, indexes, triggers and grants " +
        "while holding only ACCESS SHARE on event_log, so the previous release's inserts go on; the second takes ACCESS EXCLUSIVE " +
        "only to copy the rows written since the last pass and swap the tables (dropping the old log, renaming the new one to its " +
        "name), so those inserts wait a moment, then go on into the partitioned log; " +
        "the previous release's `ccat db backup` cannot COPY a partitioned table by name, so back up with this release once migrated",
      digest: "de2df2c648666b47"
    }
  ],
  [
    "0021_open_technologies",
    {
      kind: "compatible",
      reason: "v0.1.0 reads and writes data_location.technology as text and never names the type storage_technology; " +
        "the table holds one row per location, so its rewrite under ACCESS EXCLUSIVE is instant",
      digest: "9f95076befef77de"
    }
  ]
])

/** Judges a migration's statements in order, each seeing what the ones before it created. */
export const judge = (statements: ReadonlyArray<string>, review?: Review | undefined): ReadonlyArray<Judged> => {
  const created: Created = { tables: new Set(), columns: new Set() }
  return statements.map((sql) => {
    const judged = judgeText(stripComments(sql).toLowerCase(), created)
    const m = markers(sql)
    const marker = m.has("contract")
      ? { kind: "contract" as const, reason: m.get("contract")! }
      : m.has("compatible")
      ? { kind: "compatible" as const, reason: m.get("compatible")! }
      : judged.step === "contract"
      ? review
      : undefined
    const step: Step = marker === undefined ? judged.step : marker.kind === "contract" ? "contract" : "expand"
    // a table this migration created is seen by no one else until it commits: its locks wait for nobody
    const locks = judged.locks.filter((l) => !created.tables.has(l.on))
    return { ...judged, sql, step, marker, locks }
  })
}

/** Why a migration needs the previous release stopped: its contract steps, declared or found. */
export const contractSteps = (judged: ReadonlyArray<Judged>): ReadonlyArray<Judged> => judged.filter((j) => j.step === "contract")

/** Contract steps no marker declares: what the rules check refuses in a new migration. */
export const undeclared = (judged: ReadonlyArray<Judged>): ReadonlyArray<Judged> =>
  judged.filter((j) => j.step === "contract" && j.marker === undefined)
