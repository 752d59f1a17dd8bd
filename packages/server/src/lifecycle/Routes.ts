/**
 * How bundles leave a site: the routes that lead from a site towards a site with
 * LONG_TERM_ARCHIVE locations, their limits, and the facts (SQL) that the circuit breaker per
 * route and per destination location is judged from. The retry and breaker rules themselves are
 * core's `TransferPolicy`, re-exported here for the stages.
 */
import { Topology, TransferPolicy as Policy } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import type { QueueOptions } from "../engine/JobQueue.js"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** Optional override of the transfer policy (tests shorten the waits); defaults apply without it. */
export class TransferPolicy extends Context.Tag("@ccat/server/TransferPolicy")<TransferPolicy, Partial<Policy.TransferPolicyConfig>>() {}

/** The policy in force: the provided overrides on top of the defaults. */
export const transferPolicy = Effect.map(Effect.serviceOption(TransferPolicy), (o) => ({
  ...Policy.defaultTransferPolicy,
  ...Option.getOrElse(o, () => ({}))
}))

/** A route as a transfer from `site` uses it. */
export interface Route {
  readonly id: string
  readonly fromSite: string
  readonly toSite: string
  readonly viaSite: string | null
  /** Where a bundle sent from the current site goes next: the relay, or the end of the route. */
  readonly nextHop: string
  readonly adapter: string
  readonly options: Readonly<Record<string, unknown>>
  readonly priority: number
  readonly maxConcurrentTransfers: number
  /** Bytes per second for all transfers of the route together; undefined when unlimited. */
  readonly bandwidthLimit: number | undefined
}

/**
 * The rate cap of one transfer: the route's limit shared evenly by the transfers it may run at
 * once. A tool's cap is fixed when it starts (rsync `--bwlimit`, bbcp `-x`) and transfers of a
 * bundle last hours, so a larger share to a transfer that starts alone would hold while others
 * start beside it, and the route would exceed its limit for hours. With even shares it never
 * does; a lone transfer gets `1/maxConcurrentTransfers` of the limit, which suffices while data
 * comes slower than that, and once it comes faster bundles wait, the route runs its full count
 * of transfers, and together they use the whole limit.
 */
export const transferShare = (route: Pick<Route, "bandwidthLimit" | "maxConcurrentTransfers">): number | undefined =>
  route.bandwidthLimit === undefined ? undefined : route.bandwidthLimit / Math.max(1, route.maxConcurrentTransfers)

interface RouteRow {
  readonly id: string
  readonly fromSite: string
  readonly toSite: string
  readonly viaSite: string | null
  readonly adapter: string
  readonly options: Record<string, unknown>
  readonly priority: number
}

/** Bytes from a figure the topology sync wrote (a number) or an older row's text ("100 MB"); undefined when neither. */
export const bytesOf = (value: unknown): number | undefined =>
  typeof value === "number" && value > 0 ? value : typeof value === "string" ? Topology.parseBytes(value) : undefined

/**
 * Routes that take bundles out of `site` towards an archive, lowest priority first: routes that
 * start here (next hop: the relay, else the end), and relayed routes whose relay is here (next
 * hop: the end). Routes towards sites without a LONG_TERM_ARCHIVE location are not for bundles,
 * nor, for a given bundle, routes towards a site whose archives already hold a good copy of every
 * package in it (a package moving on to a second archive site never goes back to the first).
 */
export const leaving = Effect.fn("Routes.leaving")(function* (site: string, bundleId?: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<RouteRow>`
    select r.id, f.name as from_site, t.name as to_site, v.name as via_site, r.adapter, r.options, r.priority
    from route r join site f on f.id = r.from_site_id join site t on t.id = r.to_site_id
    left join site v on v.id = r.via_site_id
    where (f.name = ${site} or v.name = ${site})
      and exists (select 1 from data_location a where a.site_id = r.to_site_id and a.type = 'LONG_TERM_ARCHIVE')
      and (${bundleId ?? null}::uuid is null or exists (
        select 1 from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
        where m.data_transfer_package_id = ${bundleId ?? null}::uuid
          and not exists (
            select 1 from physical_copy ac join data_location al on al.id = ac.data_location_id
            where ac.raw_data_package_id = p.id and al.site_id = r.to_site_id and al.type = 'LONG_TERM_ARCHIVE'
              and ac.status = 'PRESENT' and ac.verified_at is not null and ac.checksum = p.checksum)
          -- an ARCHIVED package travels only to a site whose copies of it went bad (RepairForward)
          and (p.status <> 'completed' or exists (
            select 1 from physical_copy bc join data_location bl on bl.id = bc.data_location_id
            where bc.raw_data_package_id = p.id and bl.site_id = r.to_site_id and bl.type = 'LONG_TERM_ARCHIVE'
              and bc.status in ('CORRUPT', 'MISSING')))))
    order by r.priority, r.id`
  return rows.map((r): Route => {
    // The topology sync writes the configured limits into the row's options at every start.
    const max = typeof r.options.maxConcurrentTransfers === "number" ? r.options.maxConcurrentTransfers : 2
    return {
      ...r,
      nextHop: r.fromSite === site && r.viaSite !== null ? r.viaSite : r.toSite,
      maxConcurrentTransfers: Math.max(1, max),
      bandwidthLimit: bytesOf(r.options.bandwidthLimit)
    }
  })
})

/**
 * The circuit of a route (`route_id`) or destination location (`to_location_id`), from its
 * last attempts: closed unless the last `breakerThreshold` finished attempts all failed; then
 * open for the cool-down after the last failure, then half-open (one probe) unless a probe is
 * already running. Attempts cut short by a stopping worker (`Interrupted`) say nothing of the
 * route and are not counted. Call it inside the transaction that inserts the attempt, under the route's
 * lock, so two workers never both probe.
 */
export const circuit = Effect.fn("Routes.circuit")(function* (
  on: { readonly routeId: string } | { readonly toLocationId: string },
  policy: Policy.TransferPolicyConfig
) {
  const [found] = yield* circuits("routeId" in on ? { routes: [on.routeId] } : { locations: [on.toLocationId] }, policy)
  return found!.circuit
})

/**
 * The SQL of one circuit's facts as two columns, `last` (json) and `probing`, for the route or
 * location whose id is `id` (an SQL expression): a part of a larger statement, so a worker far
 * from the ops-db learns every circuit it needs in one round trip.
 */
export const circuitFactsSql = (
  sql: SqlClient.SqlClient,
  column: "route_id" | "to_location_id",
  id: Fragment,
  policy: Policy.TransferPolicyConfig
) => sql`
  (select coalesce(json_agg(json_build_object('status', f.status::text, 'sinceMs', (extract(epoch from (now() - f.finished_at)) * 1000)::float8,
      'errorMessage', f.error_message) order by f.finished_at desc, f.created_at desc), '[]'::json)
   from (select status, finished_at, created_at, error_message from data_transfer
         where ${sql(column)} = ${id} and status in ('completed', 'failed') and finished_at is not null
           and coalesce(error_reason, '') <> 'Interrupted'
         order by finished_at desc, created_at desc limit ${policy.breakerThreshold}) f) as last,
  (select count(*)::int from data_transfer where ${sql(column)} = ${id} and status in ('scheduled', 'in_progress')) as probing`

/** The circuits of many routes and locations in one statement, routes first, each in the order asked. */
export const circuits = Effect.fn("Routes.circuits")(function* (
  on: { readonly routes?: ReadonlyArray<string>; readonly locations?: ReadonlyArray<string> },
  policy: Policy.TransferPolicyConfig
) {
  const sql = yield* SqlClient.SqlClient
  const routes = on.routes ?? []
  const locations = on.locations ?? []
  if (routes.length + locations.length === 0) return []
  const rows = yield* sql<{ kind: "route" | "location"; id: string; n: number; last: Policy.CircuitFacts["last"]; probing: number }>`
    select 'route' as kind, k.id::text as id, k.n, ${circuitFactsSql(sql, "route_id", sql`k.id`, policy)}
    from unnest(${routes}::uuid[]) with ordinality as k(id, n)
    union all
    select 'location' as kind, k.id::text as id, k.n, ${circuitFactsSql(sql, "to_location_id", sql`k.id`, policy)}
    from unnest(${locations}::uuid[]) with ordinality as k(id, n)
    order by kind desc, n`
  return rows.map((r) => ({ kind: r.kind, id: r.id, circuit: Policy.circuitOf(r, policy) }))
})

/**
 * The number of transfers running on a route now, as a SQL expression: what its concurrency limit
 * counts, both where an attempt is allowed and where a freed place wakes a waiting bundle.
 */
export const runningSql = (sql: SqlClient.SqlClient, routeId: string) =>
  sql`(select count(*)::int from data_transfer where route_id = ${routeId}::uuid and status in ('scheduled', 'in_progress'))`

/** The key of a route's advisory lock (hashed with `hashtext`): every creator of its attempts takes the same one. */
export const routeLockKey = (routeId: string) => `ccat.route:${routeId}`

/** Serialises attempt creation on a route for the rest of the transaction (limit and probe checks). */
export const lockRoute = (routeId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select pg_advisory_xact_lock(hashtext(${routeLockKey(routeId)}))`)

/**
 * Queue options of the stages that hand bundles to each other (bundle → transfer → arrive, and
 * arrive → transfer for a corrupt delivery), so whichever sends first creates the queue alike:
 * pg-boss drops a job sent to a queue that does not exist yet.
 */
export const queues: Readonly<Record<"bundle" | "transfer" | "arrive", QueueOptions>> = {
  bundle: { policy: "stately", retryLimit: 20, retryDelaySeconds: 10, retryBackoff: true, expireInSeconds: 12 * 3600 },
  transfer: { policy: "stately", retryLimit: 20, retryDelaySeconds: 10, retryBackoff: true, expireInSeconds: 23 * 3600 },
  arrive: { policy: "stately", retryLimit: 20, retryDelaySeconds: 10, retryBackoff: true, expireInSeconds: 12 * 3600 }
}
