/**
 * The lifecycle's throughput with 1, 2 and 4 `ccat worker` processes per site on the same data.
 * Each run takes a fresh database on one embedded PostgreSQL, files the same observations at
 * chile-source, starts N real worker processes for chile and N for cologne, and is timed from
 * all of them running to every package verified in cologne-buffer (packaging, bundling, sending,
 * arrival). Afterwards it checks that no work was done twice: one package per file, one verified
 * copy per package in cologne-buffer, every job of a queue run once. Run by hand:
 *
 *   npx tsx bench/workers.ts
 *   CCAT_BENCH_WORKERS=1,2 CCAT_BENCH_OBS=12 npx tsx bench/workers.ts
 *
 * Environment (defaults in brackets): CCAT_BENCH_WORKERS [1,2,4] processes per site,
 * CCAT_BENCH_OBS [24] observations of CCAT_BENCH_FILES [4] files of CCAT_BENCH_BYTES [200000]
 * bytes, CCAT_BENCH_CAP_SECONDS [600] per run.
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
import * as WanWorker from "../packages/server/test/wan/WanWorker.js"
import { arrived, config, fileAll, num } from "./lifecycleBench.js"

const counts = (process.env["CCAT_BENCH_WORKERS"] ?? "1,2,4").split(",").map((s) => Number(s.trim()))
if (!counts.every((n) => Number.isInteger(n) && n >= 1 && n <= 16)) {
  console.error(`workers: CCAT_BENCH_WORKERS must be a list of integers from 1 to 16, got ${process.env["CCAT_BENCH_WORKERS"]}`)
  process.exit(2)
}
const observations = num("CCAT_BENCH_OBS", 24, 1, 1000)
const filesPerObs = num("CCAT_BENCH_FILES", 4, 1, 1000)
const fileBytes = num("CCAT_BENCH_BYTES", 200_000, 1, 1024 ** 3)
const capSeconds = num("CCAT_BENCH_CAP_SECONDS", 600, 10, 86_400)

/** Work done twice, if any: packages per file, verified copies per package, runs per job. */
const duplicates = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ filesTwice: number; copiesTwice: number; jobsTwice: number }>`
    select
      (select count(*)::int from (select raw_data_file_id from physical_copy c join data_location l on l.id = c.data_location_id
         where l.type = 'SOURCE' and c.raw_data_file_id is not null group by raw_data_file_id having count(*) > 1) x) as files_twice,
      (select count(*)::int from (select raw_data_package_id from physical_copy c join data_location l on l.id = c.data_location_id
         where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status <> 'DELETED'
         group by raw_data_package_id having count(*) > 1) x) as copies_twice,
      (select count(*)::int from pgboss.job where state = 'completed' and retry_count > 0) as jobs_twice`).pipe(Effect.map(([r]) => r!))

/** The jobs that ran more than once, by queue, with what their last failure said: why a run repeated work. */
const reruns = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ name: string; runs: number; said: string | null }>`
    select name, retry_count + 1 as runs, left(output::text, 240) as said from pgboss.job
    where state = 'completed' and retry_count > 0 order by name`)

/** One run with `n` workers per site; seconds from all running to every package arrived. */
const run = (n: number, root: string, cli: string, pg: EmbeddedDatabase.EmbeddedDatabase) =>
  Effect.scoped(Effect.gen(function* () {
    const dir = path.join(root, `w${n}`)
    const name = `bench_workers_${n}_${randomBytes(3).toString("hex")}`
    yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`create database ${name}`)).pipe(
      Effect.provide(PgClient.layer({ url: pg.adminUrl })),
      Effect.scoped
    )
    const url = pg.urlFor(name)
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
      const databaseUrl = Redacted.value(url)
      yield* Effect.all(
        Array.from({ length: n }, () => ["chile", "cologne"] as const).flat().map((site) =>
          WanWorker.start({ site, cli, configFile, databaseUrl })
        ),
        { concurrency: "unbounded" }
      )
      const t0 = Date.now()
      while (!(yield* arrived)) {
        if (Date.now() - t0 > capSeconds * 1000) {
          return yield* Effect.dieMessage(`${n} workers: not every package arrived within ${capSeconds} s`)
        }
        yield* Effect.sleep("100 millis")
      }
      const seconds = (Date.now() - t0) / 1000
      return { seconds, twice: yield* duplicates, again: yield* reruns }
    }).pipe(Effect.provide(db))
  }))

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    // PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the folder.
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-workers-")).then(async (d) => (await fs.chmod(d, 0o711), d))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )
  const [cli, pg] = yield* Effect.all([cliBundle, EmbeddedDatabase.start({ dataDir: path.join(root, "pg") })], { concurrency: 2 })
  const files = observations * filesPerObs
  const megabytes = (files * fileBytes) / 1e6
  console.log(
    `workers: ${observations} observations × ${filesPerObs} files × ${fileBytes} bytes (${
      megabytes.toFixed(1)
    } MB), ${os.cpus().length} cores`
  )
  const rows: Array<{ n: number; seconds: number }> = []
  for (const n of counts) {
    const { again, seconds, twice } = yield* run(n, root, cli.file, pg)
    rows.push({ n, seconds })
    const dup = twice.filesTwice + twice.copiesTwice + twice.jobsTwice === 0
      ? "no duplicate"
      : `DUPLICATES: ${twice.filesTwice} files packaged twice, ${twice.copiesTwice} packages arrived twice, ${twice.jobsTwice} jobs run again`
    // the machine's load says how much of a slowdown is other processes' (a 2-core machine shared)
    const load = os.loadavg()[0]!.toFixed(1)
    console.log(
      `${String(n).padStart(2)} worker(s) per site  ${seconds.toFixed(1).padStart(6)} s  ${
        (files / seconds).toFixed(2).padStart(7)
      } files/s  ${(megabytes / seconds).toFixed(2)} MB/s  ${dup}  (load ${load})`
    )
    for (const j of again) console.log(`     ran ${j.runs} times: ${j.name}${j.said === null ? "" : `: ${j.said}`}`)
  }
  const base = rows[0]!
  console.log(`throughput against ${base.n} worker(s): ${rows.map((r) => `${r.n}: ${(base.seconds / r.seconds).toFixed(2)}x`).join(", ")}`)
})

NodeRuntime.runMain(Effect.scoped(main))
