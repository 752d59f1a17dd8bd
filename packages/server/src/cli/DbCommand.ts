/**
 * `ccat db backup | restore | verify`: the ops-db's own backup, for operators who have no
 * `pg_dump` of the server's version at hand (the embedded PostgreSQL ships none). The database
 * is the one `serve` would use: `DATABASE_URL`, else the embedded one under the data folder.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as path from "node:path"
import type { Verified } from "../backup/Restore.js"
import { configOption, dataDirOption, jsonOption, loadOptions } from "./CommonOptions.js"

/**
 * The URL of the ops-db the configuration names. The embedded one is started for the command
 * (it refuses while a server runs on the same folder) and its database created when missing, so
 * a restore can fill a new one.
 */
const databaseUrl = (o: { config: Option.Option<string>; dataDir: Option.Option<string> }) =>
  Effect.gen(function* () {
    const [{ load }, { EmbeddedDatabase }, { default: pg }, Backup, { BackupError }] = yield* Effect.promise(() =>
      Promise.all([
        import("../ServerConfig.js"),
        import("@ccat/core/node"),
        import("pg"),
        import("../backup/Backup.js"),
        import("../backup/BackupFile.js")
      ])
    )
    const config = yield* load(loadOptions(o))
    if (config.databaseUrl !== undefined) return Redacted.value(config.databaseUrl)
    const db = yield* EmbeddedDatabase.start({ dataDir: path.join(config.dataDir, "postgres") })
    yield* Effect.tryPromise({
      try: async () => {
        const admin = new pg.Client({ connectionString: Redacted.value(db.adminUrl) })
        await admin.connect()
        try {
          const found = await admin.query("select 1 from pg_database where datname = 'ccat'")
          if (found.rowCount === 0) await admin.query("create database ccat")
        } finally {
          await admin.end()
        }
      },
      catch: (cause) => new BackupError({ reason: "Failed", detail: `embedded PostgreSQL: ${Backup.errorText(cause)}`, cause })
    })
    return Redacted.value(db.urlFor("ccat"))
  })

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

// What the commands run loads when one runs: `ccat`'s other commands never import it.
const Backups = Effect.promise(() => import("../backup/Backup.js"))
const Restores = Effect.promise(() => import("../backup/Restore.js"))

const backup = Command.make(
  "backup",
  {
    config: configOption,
    dataDir: dataDirOption,
    json: jsonOption,
    out: Options.file("out", { exists: "no" }).pipe(
      Options.withAlias("o"),
      Options.withDescription("the backup file to write (must not exist)")
    )
  },
  (o) =>
    Effect.scoped(Effect.gen(function* () {
      const url = yield* databaseUrl(o)
      const s = yield* Effect.flatMap(Backups, (b) => b.backup(url, o.out))
      if (o.json) return yield* Console.log(JSON.stringify(s))
      yield* Console.log(
        `backed up ${s.rows} rows of ${s.tables.length} tables at migration ${s.migration.id}_${s.migration.name} to ${s.file} (${
          mib(s.fileBytes)
        }, sha256 ${s.sha256})`
      )
    }))
).pipe(Command.withDescription("write a consistent, checksummed snapshot of the ops-db (not pg-boss's jobs: planners re-derive them)"))

const fileArg = Args.file({ name: "file", exists: "yes" }).pipe(Args.withDescription("a file written by ccat db backup"))

const report = (v: Verified, verb: string) =>
  Console.log(
    `${verb} ${v.trailer.rows} rows of ${v.tables.length} tables, migration ${v.header.migration.id}_${v.header.migration.name}, ` +
      `taken ${v.header.createdAt} by ccat ${v.header.ccat}`
  )

const verify = Command.make("verify", { file: fileArg, json: jsonOption }, (o) =>
  Effect.gen(function* () {
    const v = yield* Effect.flatMap(Restores, (r) => r.verify(o.file))
    if (o.json) return yield* Console.log(JSON.stringify({ valid: true, ...v }))
    yield* report(v, "valid:")
  })).pipe(Command.withDescription("check a backup's counts and checksums without touching any database"))

const restore = Command.make(
  "restore",
  { config: configOption, dataDir: dataDirOption, json: jsonOption, file: fileArg },
  (o) =>
    Effect.scoped(Effect.gen(function* () {
      const url = yield* databaseUrl(o)
      const v = yield* Effect.flatMap(Restores, (r) => r.restore(url, o.file))
      if (o.json) return yield* Console.log(JSON.stringify({ restored: true, ...v }))
      yield* report(v, "restored")
      yield* Console.log(
        "next: ccat migrate (if this ccat is newer), then start the server and workers; planners enqueue the pending work again"
      )
    }))
).pipe(
  Command.withDescription("load a backup into an empty database (verified first; a damaged file or a non-empty database changes nothing)")
)

/** A refused backup or restore ends the command with its reason and exit code 1, never a stack trace. */
const failed = (message: string) => Effect.zipRight(Console.error(`ccat: ${message}`), Effect.sync(() => (process.exitCode = 1)))

/** `ccat db`: backup, restore and verify of the ops-db. */
export const db = Command.make("db").pipe(
  Command.withDescription("ops-db backup and restore"),
  Command.withSubcommands([
    backup.pipe(Command.transformHandler(Effect.catchTag("BackupError", (e) => failed(e.message)))),
    restore.pipe(Command.transformHandler(Effect.catchTag("BackupError", (e) => failed(e.message)))),
    verify.pipe(Command.transformHandler(Effect.catchTag("BackupError", (e) => failed(e.message))))
  ])
)
