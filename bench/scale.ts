/**
 * The hot paths against the size of the catalog: for each size, a fresh ops-db gets the
 * synthetic catalog (`packages/server/test/scale/Catalog.ts`: a decade of history, the same
 * live tail at every size), the real server starts on it, and each probe runs several times:
 * `GET /api/v1/status` (as an operator: the full snapshot), `GET /metrics` (collector without
 * cache, policy as `ccat serve` has it), the Influx push's collection (line protocol), and the
 * probes of `bench/scale-probes.ts` (planner ticks, list pages). It prints the medians per size,
 * then each probe's growth from the smallest catalog to the largest against the issue's targets.
 *
 *   npx tsx bench/scale.ts                              # 10^5 and 10^6 files, embedded PostgreSQL
 *   SCALE_FILES=100000,1000000,10000000 npx tsx bench/scale.ts   # with 10^7 (by hand: ~GBs, long)
 *   DATABASE_URL=postgres://admin@host/postgres npx tsx bench/scale.ts  # creates ccat_scale_<n> there
 *
 * Each loaded catalog is vacuumed before it is probed (`vacuum (analyze)`, as years of autovacuum
 * leave an ops-db); SCALE_VACUUM=0 probes it right after the load, beside autovacuum's first pass.
 * SCALE_RUNS (default 7) sets the repetitions per probe. SCALE_KEPT=<database url> probes a catalog
 * that `bench/catalog.ts` loaded and kept (`CATALOG_KEEP`) instead of loading one: the same probes
 * on a catalog some time after its load (vacuumed, its pages read), or again after a change.
 */
import { Topology } from "@ccat/core"
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import { Migrations } from "@ccat/core"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import * as Tokens from "../packages/server/src/auth/Tokens.js"
import * as HttpServerLive from "../packages/server/src/HttpServer.js"
import { LifecyclePolicy } from "../packages/server/src/lifecycle/Packaging.js"
import * as Metrics from "../packages/server/src/observability/Metrics.js"
import { ServerConfig } from "../packages/server/src/ServerConfig.js"
import * as Catalog from "../packages/server/test/scale/Catalog.js"
import { type Probe, probes as contributed, releaseProbes } from "./scale-probes.js"

const sizes = (process.env.SCALE_FILES ?? "100000,1000000").split(",").map((s) => Number(s.trim()))
const kept = process.env.SCALE_KEPT
const runs = Number(process.env.SCALE_RUNS ?? 7)
const vacuum = process.env.SCALE_VACUUM !== "0"
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
  throw new Error(`SCALE_FILES must be positive integers separated by commas, got ${process.env.SCALE_FILES}`)
}

const get = (url: string, token?: string) =>
  Effect.promise(async () => {
    const r = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    const body = await r.text()
    if (!r.ok) throw new Error(`${url} answered ${r.status}: ${body.slice(0, 200)}`)
    return body.length
  })

const own: ReadonlyArray<Probe> = [
  { name: "GET /api/v1/status", targetMs: 200, run: (c) => get(`${c.baseUrl}/api/v1/status`, c.token) },
  { name: "GET /metrics", targetMs: 200, run: (c) => get(`${c.baseUrl}/metrics`) },
  {
    name: "Influx push (collection)",
    targetMs: 200,
    run: () => Effect.flatMap(Metrics.make({ cacheFor: 0 }), (m) => m.lineProtocol)
  }
]

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** One size: fresh database and catalog (or a kept one), server, probes; returns each probe's median in ms. */
const measure = (files: number | undefined, url: Redacted.Redacted<string>, dir: string) =>
  Effect.gen(function* () {
    const loaded = files === undefined ? undefined : yield* Catalog.load({ files, vacuum })
    const load = () => os.loadavg().map((l) => l.toFixed(1)).join(" ")
    if (loaded !== undefined) {
      console.log(`  catalog: ${loaded.rows.toLocaleString("en-US")} rows in ${loaded.seconds.toFixed(1)} s, load ${load()}`)
    }
    for (const t of loaded?.tables ?? []) {
      console.log(
        `    ${t.table.padEnd(36)} ${t.rows > 0 ? `${t.rows.toLocaleString("en-US").padStart(12)} rows` : "".padStart(17)} ${
          t.seconds.toFixed(1).padStart(7)
        } s`
      )
    }
    const account = yield* Tokens.ensureAccount({ name: `scale-ops-${files}`, role: "operator" })
    const { token } = yield* Tokens.issue({ accountId: account.id })
    const baseUrl = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
    const context = { baseUrl, token, catalog: loaded }
    const out = new Map<string, number>()
    for (const probe of [...own, ...contributed]) {
      if (probe.prepare !== undefined) yield* probe.prepare(context)
      yield* probe.run(context) // warm: plans cached, connections open
      const times: Array<number> = []
      for (let i = 0; i < runs; i++) {
        const t = performance.now()
        yield* probe.run(context)
        times.push(performance.now() - t)
      }
      out.set(probe.name, median(times))
      console.log(
        `  ${probe.name.padEnd(40)} median ${median(times).toFixed(1).padStart(8)} ms   min ${Math.min(...times).toFixed(1).padStart(8)} ms`
      )
    }
    return out
  }).pipe(
    Effect.ensuring(releaseProbes),
    Effect.provide(
      HttpServerLive.layer.pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
        Layer.provideMerge(Metrics.layer({ cacheFor: 0 })),
        Layer.provideMerge(Layer.succeed(LifecyclePolicy, Topology.demo(dir).policy)),
        Layer.provideMerge(
          Layer.succeed(ServerConfig, {
            configFile: undefined,
            host: "127.0.0.1",
            port: 0,
            dataDir: dir,
            databaseUrl: url,
            topology: Topology.demo(dir)
          })
        ),
        Layer.provideMerge(Layer.succeed(OpsDb.OpsDb, { kind: "external", target: OpsDb.describeUrl(Redacted.value(url)) })),
        Layer.provideMerge(Layer.tap(PgClient.layer(OpsDb.clientConfig(url)), (ctx) => Migrations.run.pipe(Effect.provide(ctx))))
      )
    ),
    Effect.scoped
  )

const createDatabase = (admin: Redacted.Redacted<string>, name: string) =>
  Effect.promise(async () => {
    const c = new pg.Client({ connectionString: Redacted.value(admin) })
    await c.connect()
    await c.query(`drop database if exists ${name} with (force)`)
    await c.query(`create database ${name}`)
    await c.end()
    const u = new URL(Redacted.value(admin))
    u.pathname = `/${name}`
    return Redacted.make(u.toString())
  })

/** A catalog `bench/catalog.ts` kept, probed as it is: its size and each probe's median. */
const probeKept = (url: string, dir: string) =>
  Effect.gen(function* () {
    const files = yield* Effect.promise(async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      const { rows } = await c.query<{ n: number }>("select count(*)::int as n from raw_data_file")
      await c.end()
      return rows[0]!.n
    })
    console.log(`\n${files.toLocaleString("en-US")} files (kept catalog)`)
    return [files, yield* measure(undefined, Redacted.make(url), dir)] as const
  })

/** Each size of `SCALE_FILES` loaded into a fresh database and probed: sizes and each probe's median. */
const probeSizes = (dir: string) =>
  Effect.gen(function* () {
    const admin = process.env.DATABASE_URL
      ? Redacted.make(process.env.DATABASE_URL)
      : (yield* EmbeddedDatabase.start({ dataDir: path.join(dir, "postgres") })).adminUrl
    const results: Array<readonly [number, Map<string, number>]> = []
    for (const files of sizes) {
      console.log(`\n${files.toLocaleString("en-US")} files`)
      const url = yield* createDatabase(admin, `ccat_scale_${files}`)
      results.push([files, yield* measure(files, url, dir)])
      if (!process.env.DATABASE_URL) {
        // The embedded cluster is thrown away anyway; drop each size's database so disk stays bounded.
        yield* Effect.promise(async () => {
          const c = new pg.Client({ connectionString: Redacted.value(admin) })
          await c.connect()
          await c.query(`drop database if exists ccat_scale_${files} with (force)`)
          await c.end()
        })
      }
    }
    return results
  })

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-scale-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  console.log(
    `scale benchmark: ${
      kept !== undefined ? "a kept catalog" : `${sizes.join(", ")} files`
    }, ${runs} runs per probe, node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`
  )
  const results = kept !== undefined ? [yield* probeKept(kept, dir)] : yield* probeSizes(dir)
  const first = results[0]!
  const last = results[results.length - 1]!
  console.log(`\n| probe | ${results.map(([n]) => `${n.toExponential(0)} files`).join(" | ")} | growth | target at 10^7 |`)
  console.log(`|---|${results.map(() => "---|").join("")}---|---|`)
  for (const probe of [...own, ...contributed]) {
    const cells = results.map(([, m]) => `${(m.get(probe.name) ?? NaN).toFixed(1)} ms`)
    const growth = (last[1].get(probe.name) ?? NaN) / (first[1].get(probe.name) ?? NaN)
    console.log(
      `| ${probe.name} | ${cells.join(" | ")} | ${growth.toFixed(2)}x | ${
        probe.targetMs === undefined ? "" : `< ${probe.targetMs} ms, growth < 2x`
      } |`
    )
  }
  console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`)
  console.log(
    `\ncommand: ${
      kept !== undefined ? "SCALE_KEPT=<url> " : process.env.SCALE_FILES ? `SCALE_FILES=${process.env.SCALE_FILES} ` : ""
    }npx tsx bench/scale.ts`
  )
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
