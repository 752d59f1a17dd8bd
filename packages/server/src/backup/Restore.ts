/**
 * `ccat db restore` and `ccat db verify`: put a backup into an empty database, or just check it.
 *
 * The file is read twice. The first pass verifies every table's count and checksum and the
 * whole file's checksum without touching the database, so a truncated or damaged backup is
 * refused and changes nothing. Then the database is checked empty, migrated to the backup's
 * migration (not beyond: the rows fit that schema; `ccat migrate` upgrades afterwards), and every
 * table is loaded with `COPY ... FROM STDIN` in one transaction that also re-checks the bytes and
 * the row counts, and moves identity sequences past the restored ids.
 */
import { Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Migrator from "@effect/sql/Migrator"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import type pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { connect, errorText, ident, migrationOf, tablesOf } from "./Backup.js"
import { BackupError, type Event, type Header, read, type Trailer } from "./BackupFile.js"

/** What a verified backup holds. */
export interface Verified {
  readonly header: Header
  readonly tables: ReadonlyArray<{ readonly name: string; readonly rows: number }>
  readonly trailer: Trailer
}

const asBackupError = (cause: unknown) =>
  cause instanceof BackupError ? cause : new BackupError({ reason: "Failed", detail: errorText(cause), cause })

/** Reads the whole file and checks every count and checksum; touches no database. */
export const verify = Effect.fn("Restore.verify")(function* (file: string) {
  return yield* Effect.tryPromise({
    try: async (): Promise<Verified> => {
      let header: Header | undefined
      const tables: Array<{ name: string; rows: number }> = []
      for await (const e of read(file)) {
        if (e._tag === "Header") header = e.header
        else if (e._tag === "TableEnd") tables.push({ name: e.end.name, rows: e.end.rows })
        else if (e._tag === "Trailer") return { header: header!, tables, trailer: e.trailer }
      }
      throw new BackupError({ reason: "Truncated", detail: `${file} has no trailer` })
    },
    catch: asBackupError
  })
})

/** Why the database cannot take a restore, or undefined when it can (no ops-db rows at all). */
const refusal = async (client: pg.Client, header: Header): Promise<string | undefined> => {
  const at = await migrationOf(client)
  if (at !== undefined && at.id > header.migration.id) {
    return `it is migrated to ${at.id}_${at.name}, newer than the backup's ${header.migration.id}_${header.migration.name}`
  }
  for (const t of await tablesOf(client)) {
    const r = await client.query<{ any: boolean }>(`select exists (select from ${ident(t.name)}) as any`)
    if (r.rows[0]!.any) return `table ${t.name} has rows`
  }
  return undefined
}

/** Applies the migrations up to and including the backup's, in their own transactions. */
const migrateTo = (url: string, mark: Header["migration"]) =>
  Effect.gen(function* () {
    const known = Object.keys(Migrations.migrations).map((k) => ({
      key: k,
      id: Number(k.slice(0, k.indexOf("_"))),
      name: k.slice(k.indexOf("_") + 1)
    }))
    const same = known.find((m) => m.id === mark.id)
    if (same === undefined || same.name !== mark.name) {
      return yield* new BackupError({
        reason: "Unsupported",
        detail:
          `the backup's schema is at migration ${mark.id}_${mark.name}, which this ccat does not have; restore with the ccat version that wrote it`
      })
    }
    const upTo = Object.fromEntries(known.filter((m) => m.id <= mark.id).map((m) => [m.key, Migrations.migrations[m.key]!]))
    yield* Migrator.make({})({ loader: Migrator.fromRecord(upTo), table: Migrations.table }).pipe(
      Effect.provide(PgClient.layer(OpsDb.clientConfig(Redacted.make(url)))),
      Effect.mapError((cause) => new BackupError({ reason: "Failed", detail: `migrating the target: ${errorText(cause)}`, cause }))
    )
  })

/** Loads every table section of the file with COPY FROM, in file order, on the caller's transaction. */
const copyTables = async (client: pg.Client, file: string, events: AsyncIterator<Event>) => {
  const shapes = new Map((await tablesOf(client)).map((t) => [t.name, t]))
  // The rows of one table, pulled from the shared reader until its `\.`.
  async function* rowsOfTable(): AsyncGenerator<Buffer> {
    for (;;) {
      const next = await events.next()
      if (next.done === true) throw new BackupError({ reason: "Truncated", detail: `${file} ended inside a table` })
      const e = next.value
      if (e._tag === "Rows") yield e.bytes
      else if (e._tag === "TableEnd") return
      else throw new BackupError({ reason: "Corrupt", detail: `${file}: ${e._tag} inside a table` })
    }
  }
  for (;;) {
    const next = await events.next()
    if (next.done === true) return
    const e = next.value
    if (e._tag !== "TableStart") continue
    const shape = shapes.get(e.table.name)
    const columns = e.table.columns
    if (shape === undefined || columns.some((c) => !shape.columns.includes(c))) {
      throw new BackupError({
        reason: "Unsupported",
        detail: `table ${e.table.name} of the backup (columns ${columns.join(", ")}) does not fit the migrated schema (${
          shape === undefined ? "no such table" : shape.columns.join(", ")
        })`
      })
    }
    await pipeline(
      Readable.from(rowsOfTable()),
      client.query(copyFrom(`copy ${ident(e.table.name)} (${columns.map(ident).join(", ")}) from stdin`))
    )
  }
}

const load = async (client: pg.Client, file: string, verified: Verified) => {
  await client.query("begin")
  try {
    const events = read(file)[Symbol.asyncIterator]()
    try {
      await copyTables(client, file, events)
    } finally {
      // closes the file when a COPY failed part-way
      await events.return?.(undefined)
    }
    for (const t of verified.tables) {
      const r = await client.query<{ n: string }>(`select count(*) as n from ${ident(t.name)}`)
      if (Number(r.rows[0]!.n) !== t.rows) {
        throw new BackupError({ reason: "Corrupt", detail: `table ${t.name} has ${r.rows[0]!.n} rows after loading, the backup ${t.rows}` })
      }
    }
    // identity and serial columns continue after the restored ids
    const sequences = await client.query<{ tab: string; col: string; seq: string }>(
      `select c.relname as tab, a.attname as col, pg_get_serial_sequence(quote_ident(c.relname), a.attname) as seq
       from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       where c.relkind in ('r', 'p') and not c.relispartition and pg_get_serial_sequence(quote_ident(c.relname), a.attname) is not null`
    )
    for (const s of sequences.rows) {
      await client.query(
        `select setval($1, coalesce((select max(${ident(s.col)}) from ${ident(s.tab)}), 1), (select count(*) > 0 from ${ident(s.tab)}))`,
        [s.seq]
      )
    }
    await client.query("commit")
  } catch (e) {
    await client.query("rollback").catch(() => undefined)
    throw e
  }
}

/**
 * Restores a backup into the database at `url`, which must hold no ops-db rows (a new database,
 * or one only migrated). Fails with a BackupError, and changes nothing, on a damaged file, a
 * non-empty database or a schema this ccat does not know.
 */
export const restore = Effect.fn("Restore.restore")(function* (url: string, file: string) {
  const verified = yield* verify(file)
  yield* Effect.scoped(Effect.gen(function* () {
    const client = yield* connect(url)
    const why = yield* Effect.tryPromise({ try: () => refusal(client, verified.header), catch: asBackupError })
    if (why !== undefined) {
      return yield* new BackupError({ reason: "NotEmpty", detail: `the target database is not empty: ${why}; restore into a new database` })
    }
  }))
  yield* migrateTo(url, verified.header.migration)
  yield* Effect.scoped(Effect.gen(function* () {
    const client = yield* connect(url)
    yield* Effect.tryPromise({ try: () => load(client, file, verified), catch: asBackupError })
  }))
  yield* Effect.annotateCurrentSpan({ tables: verified.tables.length, rows: verified.trailer.rows })
  return verified
})
