/**
 * How long `ccat worker --site chile` takes to reach its queues with the ops-db 220 ms away, against
 * the same on loopback: the time a site's workers need to come back after a restart or a
 * partition. Each start is a real worker process (the bundled command, as chile-wan.ts starts it)
 * timed from its spawn to the line saying its workers run, then stopped; the ops-db is migrated
 * and its topology synchronised once, so every start finds what a restart finds. Run as root:
 *
 *   npx tsx bench/worker-start.ts
 *   CCAT_BENCH_BASELINE_CLI=packages/server/.test-cli-old/cli.js npx tsx bench/worker-start.ts
 *
 * With CCAT_BENCH_BASELINE_CLI (a command bundled from an earlier tree by the test's bundler) the
 * earlier command starts too, interleaved with the current one in rotating order, so both meet
 * the same load. With CCAT_BENCH_SQL=1 it also prints the statements of one start by kind.
 * Environment: CCAT_BENCH_ROUNDS [3] starts of each variant in each mode.
 */
import { Migrations, Topology } from "@ccat/core"
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import { NodeRuntime } from "@effect/platform-node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as TopologySync from "../packages/server/src/TopologySync.js"
import { cliBundle } from "../packages/server/test/lifecycle/ChaosWorld.js"
import * as PgOverWan from "../packages/server/test/wan/PgOverWan.js"
import * as WanWorker from "../packages/server/test/wan/WanWorker.js"
import * as WanWorld from "../packages/server/test/wan/WanWorld.js"
import { config, num } from "./lifecycleBench.js"
import * as PgStatements from "./pgStatements.js"

const rounds = num("CCAT_BENCH_ROUNDS", 3, 1, 100)
const baseline = process.env["CCAT_BENCH_BASELINE_CLI"]
const countSql = process.env["CCAT_BENCH_SQL"] === "1"

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = Effect.gen(function* () {
  const root = yield* Effect.acquireRelease(
    // PostgreSQL runs as the `postgres` user when we are root: it must be able to enter the folder.
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-worker-start-")).then(async (d) => (await fs.chmod(d, 0o711), d))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )
  const log = PgStatements.collector()
  const [cli, pg, world] = yield* Effect.all([
    cliBundle,
    EmbeddedDatabase.start({ dataDir: path.join(root, "pg"), ...(countSql ? { onLog: log.onLog } : {}) }),
    WanWorld.make({ sshd: false })
  ], { concurrency: 3 })
  const relay = yield* PgOverWan.make(world, pg.adminUrl)
  const admin = PgClient.layer({ url: pg.adminUrl })
  const name = "bench_worker_start"
  yield* Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`create database ${name}`)).pipe(Effect.provide(admin), Effect.scoped)
  if (countSql) yield* PgStatements.logAll(name).pipe(Effect.provide(admin), Effect.scoped)
  const url = pg.urlFor(name)
  const c = config(path.join(root, "run"))
  const configFile = path.join(root, "ccat.json")
  yield* Effect.promise(() => fs.writeFile(configFile, JSON.stringify(c)))
  const { dataDir: _, ...topology } = c
  const decoded = Topology.decode(topology)
  if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
  yield* TopologySync.sync(decoded.right).pipe(
    Effect.provide(Layer.tap(PgClient.layer(OpsDb.clientConfig(url)), (ctx) => Migrations.run.pipe(Effect.provide(ctx))).pipe(Layer.orDie)),
    Effect.scoped
  )
  const rtt = yield* world.connectMs(PgOverWan.port, 5_000)
  const load = async () => (await fs.readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")
  console.log(`worker-start: link connect ${rtt?.toFixed(0) ?? "-"} ms; load average ${yield* Effect.promise(load)}`)

  const variants = [
    { name: "current", file: cli.file },
    ...(baseline !== undefined ? [{ name: "baseline", file: path.resolve(baseline) }] : [])
  ]
  const runs = variants.flatMap((v) => (["loopback", "wan"] as const).map((mode) => ({ ...v, mode, seconds: [] as Array<number> })))
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[(r + i) % runs.length]!
      const app = `start-${run.name}-${run.mode}-${r}`
      const u = new URL(Redacted.value(run.mode === "wan" ? relay.urlFromChile(url) : url))
      u.searchParams.set("application_name", app)
      const t0 = Date.now()
      let ready = 0
      yield* Effect.scoped(
        WanWorker.start({
          site: "chile",
          cli: run.file,
          configFile,
          databaseUrl: u.toString(),
          startTimeoutMs: 180_000,
          ...(run.mode === "wan" ? { netns: world.chile.netns } : {})
        }).pipe(Effect.tap(() => Effect.sync(() => run.seconds.push(((ready = Date.now()) - t0) / 1000))))
      )
      console.log(`${run.name.padEnd(8)} ${run.mode.padEnd(8)} ${run.seconds.at(-1)!.toFixed(1)} s`)
      if (countSql && r === 0) {
        // the log reaches us a little after the statements ran
        yield* Effect.sleep("1 second")
        log.print(app, `${run.name} ${run.mode}: statements until its workers ran`, ready)
      }
    }
  }
  console.log(`load average ${yield* Effect.promise(load)}; median of ${rounds}:`)
  for (const run of runs) {
    console.log(
      `  ${run.name.padEnd(8)} ${run.mode.padEnd(8)} ${median(run.seconds).toFixed(1)} s  (${
        run.seconds.map((s) => s.toFixed(1)).join(", ")
      })`
    )
  }
})

NodeRuntime.runMain(Effect.scoped(main))
