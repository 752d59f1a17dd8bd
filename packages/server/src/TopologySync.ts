/**
 * Brings the ops-db's Site, DataLocation, Route and RetentionPolicy rows in line with the
 * configured topology at start, so that filings, planners and the UI all read one truth.
 *
 * Availability flags are operator state: the file's values apply when a location is first
 * created; afterwards operators change them through the API, and a restart keeps their choice.
 * Nothing is deleted: a location dropped from the file may still hold copies, so it is kept and
 * reported.
 */
import type { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** What a synchronisation changed, for the start-up log. */
export interface SyncReport {
  readonly sites: number
  readonly locations: number
  readonly routes: number
  /** Locations in the ops-db that the configuration no longer names. */
  readonly unconfiguredLocations: ReadonlyArray<string>
}

/** Upserts the topology in one transaction; returns what it found. */
export const sync = Effect.fn("TopologySync.sync")(function* (topology: Topology.Topology) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      // One synchroniser at a time across processes (a server and workers starting together).
      yield* sql`select pg_advisory_xact_lock(hashtext('ccat.topology-sync'))`
      const siteIds = new Map<string, string>()
      for (const site of topology.sites) {
        const inserted = yield* sql<{ id: string }>`
          insert into site (name, short_name, role) values (${site.name}, ${site.shortName}, ${site.role})
          on conflict (name) do nothing returning id`
        if (inserted.length === 0) {
          yield* sql`update site set short_name = ${site.shortName}, role = ${site.role}
            where name = ${site.name} and (short_name::text, role::text) is distinct from (${site.shortName}::text, ${site.role}::text)`
        }
        siteIds.set(site.name, inserted[0]?.id ?? (yield* sql<{ id: string }>`select id from site where name = ${site.name}`)[0].id)
      }
      const configured = new Set<string>()
      for (const site of topology.sites) {
        for (const loc of site.locations) {
          configured.add(loc.name)
          // An upsert naming key columns (site, type) would lock the row FOR UPDATE even when
          // nothing changes, which waits on every worker transaction holding a foreign-key lock
          // on it and can deadlock with them; a plain update of changed rows only locks what changes.
          const inserted = yield* sql<{ id: string }>`
            insert into data_location (site_id, name, type, technology, driver_config, priority, readable, writable, deletable, capacity_bytes)
            values (${siteIds.get(site.name)!}, ${loc.name}, ${loc.type}, ${loc.technology}, ${JSON.stringify(loc.driver)}::jsonb,
                    ${loc.priority}, ${loc.availability.read}, ${loc.availability.write}, ${loc.availability.delete}, ${loc.capacityBytes ?? null})
            on conflict (name) do nothing
            returning id`
          if (inserted.length === 0) {
            yield* sql`
              update data_location set
                site_id = ${siteIds.get(site.name)!}, type = ${loc.type}, technology = ${loc.technology},
                driver_config = ${JSON.stringify(loc.driver)}::jsonb, priority = ${loc.priority},
                capacity_bytes = ${loc.capacityBytes ?? null}, updated_at = now()
              where name = ${loc.name}
                and (site_id, type::text, technology::text, driver_config, priority, capacity_bytes) is distinct from
                    (${siteIds.get(site.name)!}::uuid, ${loc.type}::text, ${loc.technology}::text, ${JSON.stringify(loc.driver)}::jsonb, ${loc.priority}::int, ${loc.capacityBytes ?? null}::bigint)`
          }
          const locationId = inserted[0]?.id ?? (yield* sql<{ id: string }>`select id from data_location where name = ${loc.name}`)[0].id
          if (loc.retention.keepForever) {
            yield* sql`delete from retention_policy where data_location_id = ${locationId}`
          } else {
            const threshold = loc.retention.usageThresholdPercent > 0 ? loc.retention.usageThresholdPercent / 100 : null
            yield* sql`
              insert into retention_policy (data_location_id, min_age_seconds, disk_usage_threshold, required_archive_copies, delete_concurrency)
              values (${locationId}, ${Math.floor(loc.retention.minAgeSinceArchived / 1000)}, ${threshold}, ${topology.policy.archiveCopies},
                      ${loc.retention.deleteConcurrency})
              on conflict (data_location_id) do update set
                min_age_seconds = excluded.min_age_seconds, disk_usage_threshold = excluded.disk_usage_threshold,
                required_archive_copies = excluded.required_archive_copies, delete_concurrency = excluded.delete_concurrency,
                updated_at = now()`
          }
        }
      }
      for (const route of topology.routes) {
        const via = route.via[0] === undefined ? null : siteIds.get(route.via[0])!
        // The route's limits are kept with its options, so every worker and the API read the
        // configured values from the ops-db (Routes.leaving falls back to them).
        const options = {
          ...route.options,
          maxConcurrentTransfers: route.maxConcurrentTransfers,
          ...(route.bandwidthLimit === undefined ? {} : { bandwidthLimit: route.bandwidthLimit }),
          // what sizes the bundles sent along the route (BundlePlanner)
          ...(route.measuredBandwidth === undefined ? {} : { measuredBandwidth: route.measuredBandwidth }),
          ...(route.bundleTransferTime === undefined ? {} : { bundleTransferTime: route.bundleTransferTime })
        }
        yield* sql`
          insert into route (from_site_id, to_site_id, via_site_id, adapter, options, priority)
          values (${siteIds.get(route.from)!}, ${siteIds.get(route.to)!}, ${via}, ${route.adapter}, ${JSON.stringify(options)}::jsonb, ${route.priority})
          on conflict (from_site_id, to_site_id, via_site_id, adapter) do update set
            options = excluded.options, priority = excluded.priority`
      }
      const all = yield* sql<{ name: string }>`select name from data_location order by name`
      const report: SyncReport = {
        sites: topology.sites.length,
        locations: configured.size,
        routes: topology.routes.length,
        unconfiguredLocations: all.map((r) => r.name).filter((n) => !configured.has(n))
      }
      return report
    })
  )
})
