/**
 * Brings the ops-db's Site, DataLocation, Route and RetentionPolicy rows in line with the
 * configured topology at start, so that filings, planners and the UI all read one truth.
 *
 * Availability flags are operator state: the file's values apply when a location is first
 * created; afterwards operators change them through the API, and a restart keeps their choice.
 * Nothing is deleted: a location dropped from the file may still hold copies, so it is kept and
 * reported. What a sync creates or changes is in the event log, so "when did this buffer get its
 * new capacity" has an answer.
 */
import { EventLog, type Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as os from "node:os"
import * as Sites from "./lifecycle/Sites.js"
import * as TopologyCurrent from "./TopologyCurrent.js"

/** What a synchronisation changed, for the start-up log. */
export interface SyncReport {
  readonly sites: number
  readonly locations: number
  readonly routes: number
  /** Locations in the ops-db that the configuration no longer names. */
  readonly unconfiguredLocations: ReadonlyArray<string>
  /** How many rows it created or changed (each one an event). */
  readonly changes: number
}

/** Who the sync's events name: the configuration, as this host's process read it. */
const syncActor = (): string => `config:${os.hostname()}`.slice(0, 200)

interface LocationDiff extends EventLog.Availability {
  readonly id: string
  readonly site: boolean
  readonly type: boolean
  readonly technology: boolean
  readonly driver: boolean
  readonly priority: boolean
  readonly capacity: boolean
}

/**
 * Upserts the topology in one transaction; returns what it found. Every site, location, route
 * and retention policy it creates or changes is an event, in the same transaction, naming what
 * changed (a driver's options only as changed, never their values); a run that changes nothing
 * writes none.
 */
export const sync = Effect.fn("TopologySync.sync")(function* (topology: Topology.Topology, actor: string = syncActor()) {
  const sql = yield* SqlClient.SqlClient
  // a restart almost always finds the ops-db as configured: one read, no transaction
  const current = yield* TopologyCurrent.unchanged(topology)
  if (current !== undefined) {
    const configured = new Set(topology.sites.flatMap((s) => s.locations.map((l) => l.name)))
    return {
      sites: topology.sites.length,
      locations: configured.size,
      routes: topology.routes.length,
      unconfiguredLocations: current.locations.filter((n) => !configured.has(n)),
      changes: 0
    } satisfies SyncReport
  }
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      // One synchroniser at a time across processes (a server and workers starting together).
      yield* sql`select pg_advisory_xact_lock(hashtext('ccat.topology-sync'))`
      const events: Array<EventLog.NewEvent> = []
      const siteIds = new Map<string, string>()
      for (const site of topology.sites) {
        const inserted = yield* sql<{ id: string }>`
          insert into site (name, short_name, role) values (${site.name}, ${site.shortName}, ${site.role})
          on conflict (name) do nothing returning id`
        const values = { name: site.name, shortName: site.shortName, role: site.role }
        if (inserted.length > 0) {
          events.push({ kind: "Site", id: inserted[0].id, from: null, to: "configured", actor, details: { action: "created", ...values } })
        } else {
          const changed = yield* sql<{ id: string }>`update site set short_name = ${site.shortName}, role = ${site.role}
            where name = ${site.name} and (short_name::text, role::text) is distinct from (${site.shortName}::text, ${site.role}::text)
            returning id`
          for (const c of changed) {
            events.push({ kind: "Site", id: c.id, from: "configured", to: "configured", actor, details: { action: "changed", ...values } })
          }
        }
        siteIds.set(site.name, inserted[0]?.id ?? (yield* sql<{ id: string }>`select id from site where name = ${site.name}`)[0].id)
      }
      const configured = new Set<string>()
      for (const site of topology.sites) {
        for (const loc of site.locations) {
          configured.add(loc.name)
          const siteId = siteIds.get(site.name)!
          const driver = JSON.stringify(loc.driver)
          // A driver's options may hold what should not be copied around: the event says they changed, not to what.
          const values = {
            site: site.name,
            type: loc.type,
            technology: loc.technology,
            priority: loc.priority,
            capacityBytes: loc.capacityBytes ?? null
          }
          // An upsert naming key columns (site, type) would lock the row FOR UPDATE even when
          // nothing changes, which waits on every worker transaction holding a foreign-key lock
          // on it and can deadlock with them; a plain update of changed rows only locks what changes.
          const inserted = yield* sql<{ id: string } & EventLog.Availability>`
            insert into data_location (site_id, name, type, technology, driver_config, priority, readable, writable, deletable, capacity_bytes)
            values (${siteId}, ${loc.name}, ${loc.type}, ${loc.technology}, ${driver}::jsonb,
                    ${loc.priority}, ${loc.availability.read}, ${loc.availability.write}, ${loc.availability.delete}, ${
                      loc.capacityBytes ?? null
                    })
            on conflict (name) do nothing
            returning id, readable, writable, deletable`
          let locationId: string
          let state: string
          if (inserted.length > 0) {
            locationId = inserted[0].id
            state = EventLog.availability(inserted[0])
            events.push({
              kind: "DataLocation",
              id: locationId,
              from: null,
              to: state,
              actor,
              details: { action: "created", name: loc.name, ...values }
            })
          } else {
            const [old] = yield* sql<LocationDiff>`
              select id, readable, writable, deletable,
                site_id is distinct from ${siteId}::uuid as site, type::text is distinct from ${loc.type}::text as type,
                technology::text is distinct from ${loc.technology}::text as technology, driver_config is distinct from ${driver}::jsonb as driver,
                priority is distinct from ${loc.priority}::int as priority, capacity_bytes is distinct from ${
                  loc.capacityBytes ?? null
                }::bigint as capacity
              from data_location where name = ${loc.name}`
            locationId = old.id
            state = EventLog.availability(old)
            const changed = (["site", "type", "technology", "driver", "priority", "capacity"] as const).filter((k) => old[k])
            if (changed.length > 0) {
              yield* sql`
                update data_location set
                  site_id = ${siteId}, type = ${loc.type}, technology = ${loc.technology},
                  driver_config = ${driver}::jsonb, priority = ${loc.priority},
                  capacity_bytes = ${loc.capacityBytes ?? null}, updated_at = now()
                where id = ${locationId}`
              events.push({
                kind: "DataLocation",
                id: locationId,
                from: state,
                to: state,
                actor,
                details: { action: "changed", changed, ...values }
              })
            }
          }
          if (loc.retention.keepForever) {
            const removed = yield* sql`delete from retention_policy where data_location_id = ${locationId} returning id`
            if (removed.length > 0) {
              events.push({
                kind: "DataLocation",
                id: locationId,
                from: state,
                to: state,
                actor,
                details: { action: "retention", keepForever: true }
              })
            }
          } else {
            const threshold = loc.retention.usageThresholdPercent > 0 ? loc.retention.usageThresholdPercent / 100 : null
            const retention = {
              minAgeSeconds: Math.floor(loc.retention.minAgeSinceArchived / 1000),
              diskUsageThreshold: threshold,
              requiredArchiveCopies: topology.policy.archiveCopies,
              deleteConcurrency: loc.retention.deleteConcurrency
            }
            const written = yield* sql`
              insert into retention_policy (data_location_id, min_age_seconds, disk_usage_threshold, required_archive_copies, delete_concurrency)
              values (${locationId}, ${retention.minAgeSeconds}, ${threshold}, ${retention.requiredArchiveCopies}, ${retention.deleteConcurrency})
              on conflict (data_location_id) do update set
                min_age_seconds = excluded.min_age_seconds, disk_usage_threshold = excluded.disk_usage_threshold,
                required_archive_copies = excluded.required_archive_copies, delete_concurrency = excluded.delete_concurrency,
                updated_at = now()
              where (retention_policy.min_age_seconds, retention_policy.disk_usage_threshold, retention_policy.required_archive_copies, retention_policy.delete_concurrency)
                is distinct from (excluded.min_age_seconds, excluded.disk_usage_threshold, excluded.required_archive_copies, excluded.delete_concurrency)
              returning id`
            if (written.length > 0) {
              events.push({
                kind: "DataLocation",
                id: locationId,
                from: state,
                to: state,
                actor,
                details: { action: "retention", ...retention }
              })
            }
          }
        }
      }
      for (const route of topology.routes) {
        const via = route.via[0] === undefined ? null : siteIds.get(route.via[0])!
        // The route's limits are kept with its options, so every worker and the API read the
        // configured values from the ops-db (Routes.leaving falls back to them).
        const options = TopologyCurrent.routeOptions(route)
        // `xmax = 0` tells a new row from an updated one; an unchanged route returns none.
        const written = yield* sql<{ id: string; created: boolean }>`
          insert into route (from_site_id, to_site_id, via_site_id, adapter, options, priority)
          values (${siteIds.get(route.from)!}, ${siteIds.get(route.to)!}, ${via}, ${route.adapter}, ${
            JSON.stringify(options)
          }::jsonb, ${route.priority})
          on conflict (from_site_id, to_site_id, via_site_id, adapter) do update set
            options = excluded.options, priority = excluded.priority
          where (route.options, route.priority) is distinct from (excluded.options, excluded.priority)
          returning id, (xmax = 0) as created`
        // The limits an operator reads to tell why a route behaves as it does; an adapter's own
        // options only by name, as a driver's, since they may name credentials.
        const { maxConcurrentTransfers, bandwidthLimit, measuredBandwidth, bundleTransferTime } = options as Record<string, unknown>
        const details = {
          from: route.from,
          to: route.to,
          via: route.via[0] ?? null,
          adapter: route.adapter,
          priority: route.priority,
          limits: { maxConcurrentTransfers, bandwidthLimit, measuredBandwidth, bundleTransferTime },
          adapterOptions: Object.keys(route.options).sort()
        }
        for (const w of written) {
          events.push({
            kind: "Route",
            id: w.id,
            from: w.created ? null : "configured",
            to: "configured",
            actor,
            details: { action: w.created ? "created" : "changed", ...details }
          })
        }
      }
      yield* EventLog.append(events)
      const all = yield* sql<{ name: string }>`select name from data_location order by name`
      const report: SyncReport = {
        sites: topology.sites.length,
        locations: configured.size,
        routes: topology.routes.length,
        unconfiguredLocations: all.map((r) => r.name).filter((n) => !configured.has(n)),
        changes: events.length
      }
      return report
    })
  ).pipe(
    // What this process holds of the locations' storages is read again after a sync.
    Effect.ensuring(Effect.sync(Sites.forgetStorages))
  )
})
