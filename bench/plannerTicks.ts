/**
 * Each stage's planner tick at both sites of the demo topology, against a kept catalog
 * (`bench/catalog.ts` with `CATALOG_KEEP`, served on its own or through `DATABASE_URL`): one
 * untimed tick, then the median and minimum of `RUNS` (default 5). `SERVER_ROOT` times the
 * planners of another tree, for a before/after on the same ops-db in the same run:
 *
 *   git archive <rev> packages/server/src packages/server/package.json | tar -x -C /tmp/before
 *   ln -s "$PWD/node_modules" /tmp/before/node_modules
 *   DATABASE_URL=… SERVER_ROOT=/tmp/before npx tsx bench/plannerTicks.ts before
 *   DATABASE_URL=… npx tsx bench/plannerTicks.ts after
 *
 * `STAGES=cleanup,archive` times only those. The ops-db is not migrated here (run `ccat migrate`
 * or the server once). Ticks change the catalog as planners do (jobs sent, copies scheduled).
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = process.env.SERVER_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const label = process.argv[2] ?? "ticks"
const runs = Number(process.env.RUNS ?? 5)
const url = process.env.DATABASE_URL
if (url === undefined) throw new Error("DATABASE_URL must name the ops-db holding the catalog")
if (!Number.isInteger(runs) || runs < 1) throw new Error(`RUNS must be a positive integer, got ${process.env.RUNS}`)
const only = process.env.STAGES?.split(",").map((s) => s.trim())

const src = (module: string) => import(path.join(root, "packages/server/src", module))
const JobQueue = await src("engine/JobQueue.ts")
const Storages = await src("lifecycle/Storages.ts")
const { LifecyclePolicy } = await src("lifecycle/Packaging.ts")
const Stages = await src("lifecycle/Stages.ts")

// the planners come from a tree named at run time, so their layers are typed here by hand
const world: Layer.Layer<never, unknown, never> = Layer.mergeAll(
  JobQueue.layer,
  Storages.layer(),
  Layer.succeed(LifecyclePolicy, Topology.demo("/var/tmp/ccat-scale").policy)
).pipe(
  Layer.provideMerge(PgClient.layer(OpsDb.clientConfig(Redacted.make(url)))),
  Layer.provide(Logger.minimumLogLevel(LogLevel.Error))
) as unknown as Layer.Layer<never, unknown, never>
const runtime = ManagedRuntime.make(world)

for (const site of ["chile", "cologne"]) {
  for (const stage of Stages.all as ReadonlyArray<{ name: string; plan: (site: string) => Effect.Effect<number, unknown, never> }>) {
    if (only !== undefined && !only.includes(stage.name)) continue
    const times: Array<number> = []
    let outcome = ""
    for (let i = 0; i <= runs; i++) {
      const t0 = performance.now()
      const result = await runtime.runPromise(Effect.either(stage.plan(site)))
      if (i > 0) times.push(performance.now() - t0)
      outcome = result._tag === "Left" ? `failed: ${String(result.left).slice(0, 80)}` : `${result.right} jobs`
    }
    times.sort((a, b) => a - b)
    console.log(
      `${label}\t${site}.${stage.name}\t${times[Math.floor(times.length / 2)]!.toFixed(1)} ms\t(min ${times[0]!.toFixed(1)})\t${outcome}`
    )
  }
}
await runtime.dispose()
process.exit(0)
