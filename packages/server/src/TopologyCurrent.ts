/**
 * Whether the ops-db already holds the configured topology exactly as a sync would write it, in
 * one read statement. Almost every start finds it so (a restart, a site's workers back after a
 * partition), and a sync that would change nothing still costs its transaction, its lock and a
 * few statements per site, location and route: from a site 220 ms away, seconds of every start.
 * Only an exact match counts: anything that differs, or a comparison that cannot be made, leaves
 * the full sync to run.
 */
import type { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The locations the ops-db holds (every name, for the report of those the configuration no longer names). */
export interface Current {
  readonly locations: ReadonlyArray<string>
}

/**
 * A route's options as the ops-db keeps them: the adapter's own with the route's limits, so every
 * worker and the API read the configured values from the ops-db (Routes.leaving falls back to them).
 */
export const routeOptions = (route: Topology.Topology["routes"][number]): Record<string, unknown> => ({
  ...route.options,
  maxConcurrentTransfers: route.maxConcurrentTransfers,
  ...(route.bandwidthLimit === undefined ? {} : { bandwidthLimit: route.bandwidthLimit }),
  // what sizes the bundles sent along the route (BundlePlanner)
  ...(route.measuredBandwidth === undefined ? {} : { measuredBandwidth: route.measuredBandwidth }),
  ...(route.bundleTransferTime === undefined ? {} : { bundleTransferTime: route.bundleTransferTime })
})

/**
 * The ops-db's locations when its sites, locations (site, type, technology, driver, priority,
 * capacity), retention policies and routes (options with their limits, priority) are exactly
 * what `sync` would write for `topology`; `undefined` when anything differs.
 */
export const unchanged = (topology: Topology.Topology): Effect.Effect<Current | undefined, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const sites = topology.sites.map((s) => ({ name: s.name, short_name: s.shortName, role: s.role }))
    const locations = topology.sites.flatMap((site) =>
      site.locations.map((loc) => ({
        site: site.name,
        name: loc.name,
        type: loc.type,
        technology: loc.technology,
        driver: loc.driver,
        priority: loc.priority,
        capacity: loc.capacityBytes ?? null,
        keep: loc.retention.keepForever,
        min_age: Math.floor(loc.retention.minAgeSinceArchived / 1000),
        threshold: loc.retention.usageThresholdPercent > 0 ? loc.retention.usageThresholdPercent / 100 : null,
        copies: topology.policy.archiveCopies,
        concurrency: loc.retention.deleteConcurrency
      }))
    )
    const routes = topology.routes.map((r) => ({
      from_site: r.from,
      to_site: r.to,
      via_site: r.via[0] ?? null,
      adapter: r.adapter,
      options: routeOptions(r),
      priority: r.priority
    }))
    const [row] = yield* sql<{ same: boolean; all: ReadonlyArray<string> }>`
      with ws as (select * from json_to_recordset(${JSON.stringify(sites)}::json) as x(name text, short_name text, role text)),
      wl as (select * from json_to_recordset(${JSON.stringify(locations)}::json)
             as x(site text, name text, type text, technology text, driver jsonb, priority int, capacity bigint, keep boolean,
                  min_age bigint, threshold float8, copies int, concurrency int)),
      wr as (select * from json_to_recordset(${JSON.stringify(routes)}::json)
             as x(from_site text, to_site text, via_site text, adapter text, options jsonb, priority int))
      select
        (select count(*) from ws join site s on s.name = ws.name and s.short_name::text = ws.short_name and s.role::text = ws.role) = (select count(*) from ws)
        and (select count(*) from wl
             join data_location l on l.name = wl.name
             join site s on s.id = l.site_id and s.name = wl.site
             left join retention_policy r on r.data_location_id = l.id
             where l.type::text = wl.type and l.technology::text = wl.technology and l.driver_config = wl.driver
               and l.priority = wl.priority and l.capacity_bytes is not distinct from wl.capacity
               and case when wl.keep then r.data_location_id is null
                   else r.data_location_id is not null
                     and (r.min_age_seconds, r.disk_usage_threshold, r.required_archive_copies, r.delete_concurrency)
                       is not distinct from (wl.min_age, wl.threshold, wl.copies, wl.concurrency) end) = (select count(*) from wl)
        and (select count(*) from wr
             join site f on f.name = wr.from_site join site t on t.name = wr.to_site left join site v on v.name = wr.via_site
             join route r on r.from_site_id = f.id and r.to_site_id = t.id and r.via_site_id is not distinct from v.id and r.adapter::text = wr.adapter
             where (wr.via_site is null or v.id is not null) and r.options = wr.options and r.priority = wr.priority) = (select count(*) from wr)
        as same,
        (select coalesce(json_agg(l.name::text order by l.name), '[]'::json) from data_location l) as all`
    return row?.same === true ? { locations: row.all } : undefined
  }).pipe(Effect.orElseSucceed(() => undefined), Effect.withSpan("TopologyCurrent.unchanged"))
