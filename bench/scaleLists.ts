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

/** What the planners need beside the ops-db, built once per database and kept for the bench's life. */
const runtimes = new WeakMap<
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

/** One planning tick of every stage at each site of the demo topology. */
export const plannerProbes: ReadonlyArray<Probe> = ["chile", "cologne"].flatMap((site) =>
  Stages.all.map((stage): Probe => ({
    name: `planner tick: ${site}.${stage.name}`,
    targetMs: plannerTargetMs,
    run: () =>
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => Effect.promise(() => runtimeFor(sql).runPromise(Effect.either(stage.plan(site) as Effect.Effect<number, unknown, never>)))
      )
  }))
)
