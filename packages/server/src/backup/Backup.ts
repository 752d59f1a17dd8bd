/**
 * `ccat db backup`: a consistent snapshot of the ops-db in one file, without `pg_dump` (the
 * embedded PostgreSQL ships none, and a distribution's older pg_dump refuses a newer server).
 *
 * Every table of the ops-db's schema is copied with `COPY ... TO STDOUT` inside one
 * REPEATABLE READ, READ ONLY transaction, so the file is the database at one instant while the
 * server and workers keep running. pg-boss's schema is left out on purpose: its jobs are derived
 * from ops-db state, and the planners enqueue them again after a restore. The file is written
 * under a temporary name, synced and renamed, so a cut-off backup never sits under the name.
 */
import { Migrations } from "@ccat/core"
import * as Effect from "effect/Effect"
import { once } from "node:events"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { createGzip } from "node:zlib"
import pg from "pg"
import { to as copyTo } from "pg-copy-streams"
import { version } from "../Version.js"
import { BackupError, endOfData, type Header, magic, type MigrationMark, Tally, type TableEnd, type Trailer } from "./BackupFile.js"

/** One table of the ops-db as backup and restore see it. */
export interface TableShape {
  readonly name: string
  /** Columns COPY reads and writes, in table order (generated columns left out). */
  readonly columns: ReadonlyArray<string>
}

/** What a finished backup holds. */
export interface Summary {
  readonly file: string
  readonly migration: MigrationMark
  readonly tables: ReadonlyArray<{ readonly name: string; readonly rows: number }>
  readonly rows: number
  /** Size of the compressed file. */
  readonly fileBytes: number
  readonly sha256: string
}

/** Quotes an SQL identifier. */
export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`

/** A connection of our own (COPY streams need the raw driver), closed when the scope ends. */
export const connect = (url: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client({ connectionString: url })
        // a dropped connection must fail the operation, not crash the process
        client.on("error", () => undefined)
        await client.connect()
        return client
      },
      catch: (cause) => new BackupError({ reason: "Failed", detail: `cannot connect to the database: ${errorText(cause)}`, cause })
    }),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

/** A readable account of an unknown failure. */
export const errorText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * Tables the ops-db's triggers derive from the others (the maintained counts): never backed up,
 * since restoring the rows they count rebuilds them, and restoring them too would count twice.
 */
const derivedTables = ["ops_count", "ops_histogram", "ops_count_verified", "ops_package_archive_copies"]

/**
 * The ops-db's tables (the connection's current schema, without the migrations table and the
 * derived ones; a partitioned table is one table, its partitions never named), ordered
 * so that a table comes after every table it references: restoring in this order satisfies the
 * foreign keys. A reference cycle cannot be ordered and is reported.
 */
export const tablesOf = async (client: pg.Client): Promise<ReadonlyArray<TableShape>> => {
  const tables = await client.query<{ name: string; columns: Array<string> }>(
    `select c.relname as name,
       array_agg(a.attname::text order by a.attnum) as columns
     from pg_class c
     join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
     join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
     where c.relkind in ('r', 'p') and not c.relispartition and c.relname <> $1 and c.relname <> all($2)
     group by c.relname
     order by c.relname`,
    [Migrations.table, derivedTables]
  )
  const refs = await client.query<{ child: string; parent: string }>(
    `select distinct c.relname as child, p.relname as parent
     from pg_constraint k
     join pg_class c on c.oid = k.conrelid
     join pg_class p on p.oid = k.confrelid
     join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
     where k.contype = 'f' and c.oid <> p.oid`
  )
  const parents = new Map<string, Set<string>>(tables.rows.map((t) => [t.name, new Set<string>()]))
  for (const r of refs.rows) parents.get(r.child)?.add(r.parent)
  const ordered: Array<TableShape> = []
  const placed = new Set<string>()
  while (ordered.length < tables.rows.length) {
    const ready = tables.rows.filter((t) => !placed.has(t.name) && [...parents.get(t.name)!].every((p) => placed.has(p) || !parents.has(p)))
    if (ready.length === 0) {
      const left = tables.rows.filter((t) => !placed.has(t.name)).map((t) => t.name)
      throw new BackupError({
        reason: "Unsupported",
        detail: `the foreign keys of ${left.join(", ")} form a cycle; they cannot be restored in one order`
      })
    }
    for (const t of ready) {
      placed.add(t.name)
      ordered.push({ name: t.name, columns: t.columns })
    }
  }
  return ordered
}

/** The newest migration applied to the database, or undefined on a database never migrated. */
export const migrationOf = async (client: pg.Client): Promise<MigrationMark | undefined> => {
  const exists = await client.query<{ found: boolean }>(`select to_regclass($1) is not null as found`, [Migrations.table])
  if (!exists.rows[0]!.found) return undefined
  const rows = await client.query<{ id: number; name: string }>(
    `select migration_id as id, name from ${ident(Migrations.table)} order by migration_id desc limit 1`
  )
  return rows.rows[0]
}

/** Writes a line (or bytes) to the gzip stream, waiting when it asks us to. */
const writeTo = async (out: NodeJS.WritableStream, tally: Tally, bytes: Buffer) => {
  tally.add(bytes)
  if (!out.write(bytes)) await once(out as unknown as NodeJS.EventEmitter, "drain")
}

const snapshot = async (client: pg.Client, file: string, temp: string): Promise<Summary> => {
  await client.query("begin isolation level repeatable read, read only")
  try {
    const migration = await migrationOf(client)
    if (migration === undefined) {
      throw new BackupError({ reason: "Failed", detail: "the database has no ops-db schema (no migration was ever applied)" })
    }
    const tables = await tablesOf(client)
    const postgres = (await client.query<{ v: string }>("select version() as v")).rows[0]!.v
    const gzip = createGzip({ level: 6 })
    const sink = fs.createWriteStream(temp, { flags: "wx" })
    const written = once(sink, "close")
    const failed = new Promise<never>((_, reject) => {
      gzip.on("error", reject)
      sink.on("error", reject)
    })
    gzip.pipe(sink)
    const whole = new Tally()
    const line = (text: string) => writeTo(gzip, whole, Buffer.from(text + "\n", "utf8"))
    const header: Header = { createdAt: new Date().toISOString(), migration, tables: tables.map((t) => t.name), ccat: version, postgres }
    const counts: Array<{ name: string; rows: number }> = []
    const work = (async () => {
      await line(magic)
      await line(`HEADER ${JSON.stringify(header)}`)
      for (const t of tables) {
        await line(`TABLE ${JSON.stringify({ name: t.name, columns: t.columns })}`)
        const tally = new Tally()
        // the query form, since COPY reads no partitioned table (the event log) by its name
        const copy = client.query(copyTo(`copy (select ${t.columns.map(ident).join(", ")} from ${ident(t.name)}) to stdout`))
        for await (const chunk of copy as AsyncIterable<Buffer>) {
          tally.add(chunk)
          await writeTo(gzip, whole, chunk)
        }
        await line(endOfData)
        const end: TableEnd = { name: t.name, rows: tally.rows, bytes: tally.bytes, sha256: tally.digest() }
        await line(`END ${JSON.stringify(end)}`)
        counts.push({ name: t.name, rows: end.rows })
      }
      const rows = counts.reduce((n, t) => n + t.rows, 0)
      const trailer: Trailer = { tables: tables.length, rows, sha256: whole.digest() }
      gzip.end(`BACKUP-END ${JSON.stringify(trailer)}\n`)
      await written
      return trailer
    })()
    const trailer = await Promise.race([work, failed])
    const handle = await fsp.open(temp, "r")
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
    await client.query("commit")
    const fileBytes = (await fsp.stat(temp)).size
    return { file, migration, tables: counts, rows: trailer.rows, fileBytes, sha256: trailer.sha256 }
  } catch (e) {
    await client.query("rollback").catch(() => undefined)
    throw e
  }
}

/**
 * Backs up the ops-db at `url` into `file` (gzip; refuses to replace an existing file). The
 * database is only read; the file appears under its name only once complete and synced.
 */
export const backup = Effect.fn("Backup.backup")(function* (url: string, file: string) {
  const target = path.resolve(file)
  const exists = yield* Effect.promise(() => fsp.stat(target).then(() => true, () => false))
  if (exists) {
    return yield* new BackupError({ reason: "Exists", detail: `${target} exists; choose a new name (a backup never replaces a file)` })
  }
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.partial`)
  const client = yield* connect(url)
  const summary = yield* Effect.tryPromise({
    try: () => snapshot(client, target, temp),
    catch: (cause) => cause instanceof BackupError ? cause : new BackupError({ reason: "Failed", detail: errorText(cause), cause })
  }).pipe(Effect.tapError(() => Effect.promise(() => fsp.rm(temp, { force: true }))))
  yield* Effect.tryPromise({
    try: async () => {
      // link + unlink rather than rename: never replaces a file that appeared meanwhile
      await fsp.link(temp, target)
      await fsp.rm(temp, { force: true })
      const dir = await fsp.open(path.dirname(target), "r")
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
    },
    catch: (cause) =>
      new BackupError({
        reason: (cause as { code?: string })?.code === "EEXIST" ? "Exists" : "Failed",
        detail: `cannot write ${target}: ${errorText(cause)}`,
        cause
      })
  }).pipe(Effect.tapError(() => Effect.promise(() => fsp.rm(temp, { force: true }))))
  yield* Effect.annotateCurrentSpan({ tables: summary.tables.length, rows: summary.rows, bytes: summary.fileBytes })
  return summary
}, Effect.scoped)
