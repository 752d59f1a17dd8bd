/**
 * The Chile-side pipeline (packaging, bundling, sending) with the ops-db 220 ms away against the
 * same on loopback. A real `ccat worker --site chile` runs once in the root namespace (the ops-db
 * on loopback) and once inside the chile namespace of an emulated link (`wan/`), reaching the
 * same PostgreSQL through relays in cologne (`packages/server/test/wan/PgOverWan.ts`); a cologne
 * worker on loopback unpacks in both runs. Each run files the same observations and is timed from
 * both workers running to every package verified in cologne-buffer. The data path is the local
 * route in both runs: what differs is only the distance to the ops-db. Run as root, by hand:
 *
 *   npx tsx bench/chile-wan.ts
 *   CCAT_BENCH_OBS=4 CCAT_BENCH_FILES=3 npx tsx bench/chile-wan.ts
 *
 * Environment (defaults in brackets): CCAT_BENCH_OBS [6] observations of CCAT_BENCH_FILES [4]
 * files of CCAT_BENCH_BYTES [200000] bytes each, CCAT_BENCH_CAP_SECONDS [600] per run. With
 * CCAT_BENCH_BASELINE_CLI (a command bundled from an earlier tree by the test's bundler) the
 * earlier command runs the same pair too, in the order current, baseline, baseline, current, so
 * both meet the same load. Each run also prints how long the chile worker took to start.
 */
import { Migrations, Topology } from "@ccat/core"
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import { NodeRuntime } from "@effect/platform-node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as TopologySync from "../packages/server/src/TopologySync.js"
import { cliBundle } from "../packages/server/test/lifecycle/ChaosWorld.js"
import * as PgOverWan from "../packages/server/test/wan/PgOverWan.js"
import * as WanWorker from "../packages/server/test/wan/WanWorker.js"
import * as WanWorld from "../packages/server/test/wan/WanWorld.js"
import { arrived, config, fileAll, num } from "./lifecycleBench.js"

const observations = num("CCAT_BENCH_OBS", 6, 1, 1000)
const filesPerObs = num("CCAT_BENCH_FILES", 4, 1, 1000)
const fileBytes = num("CCAT_BENCH_BYTES", 200_000, 1, 1024 ** 3)
const capSeconds = num("CCAT_BENCH_CAP_SECONDS", 600, 10, 86_400)
/** With CCAT_BENCH_SQL=1, PostgreSQL logs every statement and the run counts the chile worker's. */
const countSql = process.env["CCAT_BENCH_SQL"] === "1"

/** Statements each application ran, from PostgreSQL's log (`log_statement = all`). */
const statements = new Map<string, Map<string, number>>()
let continued: string | undefined
const onLog = (line: string) => {
  // a statement that starts with a line break goes on in the log's next line
  const m = /^([^|]*)\|.*LOG:\s+(?:statement|execute [^:]*):\s*(.*)$/.exec(line)
  const waiting = continued
  continued = undefined
  if (m === null && (waiting === undefined || line.trim() === "")) return
  const app = m === null ? waiting! : m[1]!
  const text = (m === null ? line : m[2]!).replace(/\s+/g, " ").trim()
  if (text === "") return void (continued = app)
  const kind = /^(begin|commit|rollback|savepoint|release|select pg_advisory|listen|notify)/i.exec(text)?.[1]?.toLowerCase() ??
    text.slice(0, 60)
  const byKind = statements.get(app) ?? new Map<string, number>()
  byKind.set(kind, (byKind.get(kind) ?? 0) + 1)
  statements.set(app, byKind)
}

/** The URL with an `application_name`, so the log tells the workers' statements apart. */
const withApp = (url: Redacted.Redacted<string>, app: string) => {
  const u = new URL(Redacted.value(url))
  u.searchParams.set("application_name", app)
  return Redacted.make(u.toString())
}

/** Prints, per queue, how many jobs ran, how long each waited to be taken and how long it ran (means). */
const jobTimes = (mode: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ queue: string; n: number; waited: number; ran: number }>`
      select name as queue, count(*)::int as n,
        avg(extract(epoch from started_on - created_on))::float8 as waited, avg(extract(epoch from completed_on - started_on))::float8 as ran
      from pgboss.job where state = 'completed' and name not like '%.sweep' and name not like '%.audit' and name not like '%.inventory'
      group by name order by name`
    console.log(
      `${mode}: jobs ${rows.map((r) => `${r.queue} ${r.n} × ${r.ran.toFixed(2)} s (taken after ${r.waited.toFixed(2)} s)`).join(", ")}`
    )
  })

/** Prints the chile worker's statements per finished chile job, and the most frequent ones. */
const report = (mode: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // the log reaches us a little after the statements ran
    yield* Effect.sleep("1 second")
    const jobs = yield* sql<{ queue: string; n: number }>`
      select name as queue, count(*)::int as n from pgboss.job where name like 'chile.%' and state = 'completed' group by name order by name`
    const total = jobs.reduce((n, j) => n + j.n, 0)
    const chile = statements.get("chile-worker") ?? new Map<string, number>()
    const all = [...chile.values()].reduce((a, b) => a + b, 0)
    console.log(`${mode}: chile worker ran ${all} statements for ${total} jobs (${jobs.map((j) => `${j.queue} ${j.n}`).join(", ")})`)
    for (const [kind, n] of [...chile.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      console.log(`  ${String(n).padStart(6)}  ${kind}`)
    }
  })

/** One run: a fresh database, the files, both workers; seconds from the workers running to every package arrived. */
const run = (
  mode: "loopback" | "wan",
  label: string,
  root: string,
  cli: string,
  pg: EmbeddedDatabase.EmbeddedDatabase,
  relay: PgOverWan.PgOverWan,
  world: WanWorld.WanWorld
) =>
  Effect.scoped(Effect.gen(function* () {
    const dir = path.join(root, `${label}-${mode}`)
    const name = `bench_chile_${mode}_${randomBytes(3).toString("hex")}`
    yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`create database ${name}`)).pipe(
      Effect.provide(PgClient.layer({ url: pg.adminUrl })),
      Effect.scoped
    )
    const url = pg.urlFor(name)
    if (countSql) {
      statements.clear()
      yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`alter database ${name} set log_statement = 'all'`)).pipe(
        Effect.provide(PgClient.layer({ url: pg.adminUrl })),
        Effect.scoped
      )
    }
    const db = Layer.tap(PgClient.layer(OpsDb.clientConfig(url)), (ctx) => Migrations.run.pipe(Effect.provide(ctx))).pipe(Layer.orDie)
    return yield* Effect.gen(function* () {
      const c = config(dir)
      const configFile = path.join(dir, "ccat.json")
      yield* Effect.promise(() => fs.mkdir(dir, { recursive: true }).then(() => fs.writeFile(configFile, JSON.stringify(c))))
      const { dataDir: _, ...topology } = c
      const decoded = Topology.decode(topology)
      if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
      yield* TopologySync.sync(decoded.right)
      yield* fileAll(path.join(dir, "locations", "chile-source"), observations, filesPerObs, fileBytes)
      const chileUrl = withApp(mode === "wan" ? relay.urlFromChile(url) : url, "chile-worker")
      const spawned = Date.now()
      let chileStart = 0
      yield* Effect.all([
        WanWorker.start({
          site: "chile",
          cli,
          configFile,
          databaseUrl: Redacted.value(chileUrl),
          ...(mode === "wan" ? { netns: world.chile.netns } : {})
        }).pipe(
          Effect.tap(() => Effect.sync(() => (chileStart = (Date.now() - spawned) / 1000)))
        ),
        WanWorker.start({ site: "cologne", cli, configFile, databaseUrl: Redacted.value(withApp(url, "cologne-worker")) })
      ], { concurrency: 2 })
      console.log(`${label} ${mode}: the chile worker started in ${chileStart.toFixed(1)} s`)
      const t0 = Date.now()
      while (!(yield* arrived)) {
        if (Date.now() - t0 > capSeconds * 1000) {
          return yield* Effect.dieMessage(`${mode}: not every package arrived within ${capSeconds} s`)
        }
        yield* Effect.sleep("200 millis")
      }
      const seconds = (Date.now() - t0) / 1000
      yield* jobTimes(mode)
      if (countSql) yield* report(mode)
      return seconds
    }).pipe(Effect.provide(db))
  }))

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    // PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the folder.
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-chile-wan-")).then(async (d) => (await fs.chmod(d, 0o711), d))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )
  const [cli, pg, world] = yield* Effect.all([
    cliBundle,
    EmbeddedDatabase.start({ dataDir: path.join(root, "pg"), ...(countSql ? { onLog } : {}) }),
    WanWorld.make({ sshd: false })
  ], { concurrency: 3 })
  const relay = yield* PgOverWan.make(world, pg.adminUrl)
  if (countSql) {
    yield* Effect.flatMap(
      PgClient.PgClient,
      (sql) => Effect.zipRight(sql.unsafe(`alter system set log_line_prefix = '%a|'`), sql.unsafe(`select pg_reload_conf()`))
    ).pipe(Effect.provide(PgClient.layer({ url: pg.adminUrl })), Effect.scoped)
  }
  const rtt = yield* world.connectMs(PgOverWan.port, 5_000)
  const megabytes = (observations * filesPerObs * fileBytes) / 1e6
  console.log(
    `chile-wan: ${observations} observations × ${filesPerObs} files × ${fileBytes} bytes (${megabytes.toFixed(1)} MB); link connect ${
      rtt?.toFixed(0) ?? "-"
    } ms`
  )
  const baseline = process.env["CCAT_BENCH_BASELINE_CLI"]
  const order = baseline === undefined
    ? [["current", cli.file]]
    : [["current", cli.file], ["baseline", path.resolve(baseline)], ["baseline", path.resolve(baseline)], ["current", cli.file]]
  const seconds: Record<string, Array<number>> = {}
  const load = async () => (await fs.readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")
  for (const [i, [label, file]] of order.entries()) {
    // loopback first, then the link; the pair after it the other way round
    for (const mode of (i % 2 === 0 ? ["loopback", "wan"] : ["wan", "loopback"]) as Array<"loopback" | "wan">) {
      const s = yield* run(mode, label!, root, file!, pg, relay, world)
      ;(seconds[`${label} ${mode}`] ??= []).push(s)
      console.log(
        `${label} ${mode.padEnd(8)} ${s.toFixed(1)} s  ${(observations * filesPerObs / s).toFixed(2)} files/s  ${
          (megabytes / s).toFixed(2)
        } MB/s  (load ${yield* Effect.promise(load)})`
      )
    }
  }
  const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length
  for (const label of [...new Set(order.map(([l]) => l!))]) {
    const wan = mean(seconds[`${label} wan`]!)
    const loopback = mean(seconds[`${label} loopback`]!)
    console.log(
      `${label}: wan / loopback time: ${(wan / loopback).toFixed(2)} (throughput on the link ${
        (100 * loopback / wan).toFixed(0)
      }% of loopback's)`
    )
  }
})

NodeRuntime.runMain(Effect.scoped(main))
