/**
 * The list pages and the planner ticks for `bench/scale.ts` (through `bench/scale-probes.ts`):
 * the first and a deep page of every list endpoint (the deep page starts from a cursor half way
 * through the table, as a caller who paged there holds it), a few filters on live states, the
 * event log of one item, the integrity view, and one planning tick of every stage at each site.
 *
 * Planner ticks run last and claim what is ready on the first (untimed) run, as a running site
 * would have done; the timed runs are the ticks that follow, which find the live work claimed
 * and re-derive nothing: the steady state of a site.
 */
import { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as JobQueue from "../packages/server/src/engine/JobQueue.js"
import { LifecyclePolicy } from "../packages/server/src/lifecycle/Packaging.js"
import * as Stages from "../packages/server/src/lifecycle/Stages.js"
import * as Storages from "../packages/server/src/lifecycle/Storages.js"
import type { Probe, ProbeContext } from "./scale-probes.js"

const listTargetMs = 100
const plannerTargetMs = 50

const get = (url: string, token: string) =>
  Effect.promise(async () => {
    const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    const body = await r.text()
    if (!r.ok) throw new Error(`${url} answered ${r.status}: ${body.slice(0, 200)}`)
    return body.length
  })

/** Values a probe computes once per catalog (a cursor, an id), keyed by the server and the name. */
const once = new Map<string, string>()
const cached = (context: ProbeContext, key: string, make: Effect.Effect<string, never, SqlClient.SqlClient>) =>
  Effect.suspend(() => {
    const k = `${context.baseUrl} ${key}`
    const hit = once.get(k)
    return hit !== undefined ? Effect.succeed(hit) : Effect.tap(make, (v) => Effect.sync(() => once.set(k, v)))
  })

/** A cursor half way through a table in page order. */
const middle = (table: string, orderBy: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ key: string; id: string }>`
      select ${sql(orderBy)}::text as key, id from ${sql(table)} order by ${sql(orderBy)}, id
      offset (select count(*) / 2 from ${sql(table)}) limit 1`).pipe(
    Effect.map(([r]) => Buffer.from(JSON.stringify([r!.key, r!.id])).toString("base64url")),
    Effect.orDie
  )

const one = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`${sql.unsafe(query)}`).pipe(Effect.map(([r]) => r!.id), Effect.orDie)

const page = (name: string, path: string): Probe => ({
  name: `list: ${name}`,
  targetMs: listTargetMs,
  run: (c) => get(`${c.baseUrl}/api/v1${path}`, c.token)
})

const deep = (name: string, path: string, table: string, orderBy: string): Probe => ({
  name: `list: ${name} (deep page)`,
  targetMs: listTargetMs,
  run: (c) =>
    Effect.flatMap(
      cached(c, `${table} middle`, middle(table, orderBy)),
      (cursor) => get(`${c.baseUrl}/api/v1${path}${path.includes("?") ? "&" : "?"}cursor=${cursor}`, c.token)
    )
})

const withId = (name: string, query: string, path: (id: string) => string): Probe => ({
  name: `list: ${name}`,
  targetMs: listTargetMs,
  run: (c) => Effect.flatMap(cached(c, query, one(query)), (id) => get(`${c.baseUrl}/api/v1${path(id)}`, c.token))
})

/** First and deep pages of every list endpoint, live-state filters, one item's events, the integrity view. */
export const listProbes: ReadonlyArray<Probe> = [
  page("observations", "/observations"),
  deep("observations", "/observations", "executed_obs_unit", "start_at"),
  page("files", "/files"),
  deep("files", "/files", "raw_data_file", "filed_at"),
  page("files?state=filed", "/files?state=filed"),
  page("packages", "/packages"),
  deep("packages", "/packages", "raw_data_package", "created_at"),
  page("packages?journey=WAITING", "/packages?journey=WAITING"),
  page("bundles", "/bundles"),
  deep("bundles", "/bundles", "data_transfer_package", "created_at"),
  page("transfers", "/transfers"),
  deep("transfers", "/transfers", "data_transfer", "created_at"),
  page("copies", "/copies"),
  deep("copies", "/copies", "physical_copy", "created_at"),
  withId("copies?locationId=<archive>", "select id from data_location where name = 'cologne-archive'", (id) => `/copies?locationId=${id}`),
  page("copies?status=DELETION_FAILED", "/copies?status=DELETION_FAILED"),
  page("staging-requests", "/staging-requests"),
  withId(
    "events of a file",
    "select id from raw_data_file order by filed_at, id offset 1000 limit 1",
    (id) => `/events?entity=RawDataFile&id=${id}`
  ),
  page("integrity", "/integrity")
]

/** What the planners need beside the ops-db, built once per database and kept until `releaseRuntimes`. */
const runtimes = new Map<
  object,
  ManagedRuntime.ManagedRuntime<JobQueue.JobQueue | Storages.Storages | LifecyclePolicy | SqlClient.SqlClient, unknown>
>()
const runtimeFor = (sql: SqlClient.SqlClient) => {
  let runtime = runtimes.get(sql)
  if (runtime === undefined) {
    const policy = Topology.demo("/var/tmp/ccat-scale").policy
    runtime = ManagedRuntime.make(
      Layer.mergeAll(JobQueue.layer, Storages.layer(), Layer.succeed(LifecyclePolicy, policy)).pipe(
        Layer.provideMerge(Layer.succeed(SqlClient.SqlClient, sql))
      )
    )
    runtimes.set(sql, runtime)
  }
  return runtime
}

/**
 * Stops the planners' job engines (their heartbeats) while the ops-db's pool is still open: run it
 * before a catalog's server and pool go, or the heartbeat outlives them and warns every 10 s.
 */
export const releaseRuntimes: Effect.Effect<void> = Effect.promise(async () => {
  const all = [...runtimes.values()]
  runtimes.clear()
  await Promise.all(all.map((r) => r.dispose()))
})

/** One planning tick of a stage at a site. */
const tick = (site: string, stage: (typeof Stages.all)[number]) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => Effect.promise(() => runtimeFor(sql).runPromise(Effect.either(stage.plan(site) as Effect.Effect<number, unknown, never>)))
  )

const cleanup = Stages.all.find((s) => s.name === "cleanup")!

/** Ticks a site's cleanup may take to catch up with a loaded catalog before the bench gives up. */
const catchUpTicks = 5_000

/**
 * Ticks the site's cleanup planner until it has caught up with the loaded catalog: every completed
 * package stamped with its archive time (100 a tick: 2,500 ticks at 10^7), the site's mark set
 * and the sweep its first tick began ended (500 live copies a tick), and a tick that scheduled
 * no copy (the live tail's deletable copies all scheduled, 200 a tick). What follows are the
 * ticks of a site in service between its hourly sweeps, which judge what changed since the last one.
 */
const catchUp = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const state = sql<{ unstamped: boolean; marked: boolean; scheduled: number }>`
      select exists (select 1 from raw_data_package where status = 'completed' and archived_at is null) as unstamped,
        exists (select 1 from cleanup_mark m join site s on s.id = m.site_id
                where s.name = ${site} and m.sweep_started_at is null) as marked,
        (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
         where s.name = ${site} and c.status = 'DELETION_SCHEDULED') as scheduled`.pipe(Effect.map(([r]) => r!), Effect.orDie)
    let before = yield* state
    for (let i = 1; i <= catchUpTicks; i++) {
      yield* tick(site, cleanup)
      const after = yield* state
      if (!after.unstamped && after.marked && after.scheduled === before.scheduled) {
        console.log(`  ${site}.cleanup caught up with the catalog after ${i} ticks`)
        return
      }
      before = after
    }
    return yield* Effect.dieMessage(`${site}.cleanup had not caught up with the catalog after ${catchUpTicks} ticks`)
  })

/**
 * One planning tick of every stage at each site of the demo topology; then each site's cleanup
 * tick again once it has caught up with the catalog (`catchUp`, untimed): the first ones, timed
 * above, stamp the catalog's packages and schedule the live tail's deletable copies, work a site
 * does once after an upgrade or a load.
 */
export const plannerProbes: ReadonlyArray<Probe> = [
  ...["chile", "cologne"].flatMap((site) =>
    Stages.all.map((stage): Probe => ({
      name: `planner tick: ${site}.${stage.name}${stage === cleanup ? " (first ticks after the load)" : ""}`,
      targetMs: plannerTargetMs,
      run: () => tick(site, stage)
    }))
  ),
  ...["chile", "cologne"].map((site): Probe => ({
    name: `planner tick: ${site}.cleanup (steady)`,
    targetMs: plannerTargetMs,
    prepare: () => catchUp(site),
    run: () => tick(site, cleanup)
  }))
]
