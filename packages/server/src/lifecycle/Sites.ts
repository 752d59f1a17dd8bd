/**
 * What the lifecycle asks of the topology in the ops-db: a site's locations of a type in
 * priority order, a location by id, and how full a location is.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { LocationSpec } from "./Storages.js"

/** A DataLocation with its site, as the lifecycle uses it. */
export interface Location extends LocationSpec {
  readonly siteId: string
  readonly siteName: string
  readonly type: "SOURCE" | "BUFFER" | "LONG_TERM_ARCHIVE" | "PROCESSING"
  readonly priority: number
  readonly readable: boolean
  readonly writable: boolean
  readonly deletable: boolean
  readonly capacityBytes: number | null
}

const columns = `l.id, l.site_id, s.name as site_name, l.name, l.type::text as type, l.technology::text as technology,
  l.driver_config, l.priority, l.readable, l.writable, l.deletable, l.capacity_bytes`

/** A site's locations of one type, lower priority first. */
export const locationsOf = (site: string, type: Location["type"]) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<Location>(
      `select ${columns} from data_location l join site s on s.id = l.site_id
       where s.name = $1 and l.type = $2::location_type order by l.priority, l.name`,
      [site, type]
    ))

/**
 * The location of the row `l` (joined with its site `s`) as one json column, shaped like
 * `Location`, so a statement that reads a copy can bring its location along.
 */
export const locationJson = (sql: SqlClient.SqlClient) =>
  sql.literal(`json_build_object('id', l.id, 'site_id', l.site_id, 'site_name', s.name,
  'name', l.name, 'type', l.type::text, 'technology', l.technology::text, 'driver_config', l.driver_config, 'priority', l.priority,
  'readable', l.readable, 'writable', l.writable, 'deletable', l.deletable, 'capacity_bytes', l.capacity_bytes)`)

/** One location by id, read now. */
export const location = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql.unsafe<Location>(`select ${columns} from data_location l join site s on s.id = l.site_id where l.id = $1`, [id])
  ).pipe(Effect.flatMap((rows) => (rows.length === 1 ? Effect.succeed(rows[0]) : Effect.dieMessage(`no data location ${id}`))))

/**
 * How long a process trusts a location it read for `storageOf`. A location's storage (technology,
 * driver settings) changes only with the configuration, which the topology sync writes; its
 * switches are read fresh (`locationsOf`) wherever they decide anything.
 */
const storageTtlMillis = 60_000
const known = new Map<string, { readonly location: Location; readonly until: number }>()

/**
 * A location to reach its storage with: read once a minute at most per process, so a job reading
 * a member or a source costs no round trip to the ops-db for it. Not for its switches.
 */
export const storageOf = (id: string) =>
  Effect.suspend(() => {
    const hit = known.get(id)
    if (hit !== undefined && hit.until > Date.now()) return Effect.succeed(hit.location)
    return Effect.tap(location(id), (l) => Effect.sync(() => void known.set(id, { location: l, until: Date.now() + storageTtlMillis })))
  })

/** Forgets every location `storageOf` holds (the topology sync changed them). */
export const forgetStorages = () => known.clear()

/** Bytes held by live copies at a location, for capacity checks where the driver cannot tell. */
export const usedBytes = (locationId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ used: number }>`
      select coalesce(sum(size_bytes), 0)::bigint as used from physical_copy
      where data_location_id = ${locationId} and status <> 'DELETED'`).pipe(Effect.map((rows) => rows[0].used))

/** Names of every site, for a process that runs all of them (the embedded default). */
export const siteNames = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ name: string }>`select name from site order by name`).pipe(
  Effect.map((rows) => rows.map((r) => r.name))
)
