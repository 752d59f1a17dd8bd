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
    )
  )

/** One location by id. */
export const location = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<Location>(`select ${columns} from data_location l join site s on s.id = l.site_id where l.id = $1`, [id])
  ).pipe(Effect.flatMap((rows) => (rows.length === 1 ? Effect.succeed(rows[0]) : Effect.dieMessage(`no data location ${id}`))))

/** Bytes held by live copies at a location, for capacity checks where the driver cannot tell. */
export const usedBytes = (locationId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ used: number }>`
      select coalesce(sum(size_bytes), 0)::bigint as used from physical_copy
      where data_location_id = ${locationId} and status <> 'DELETED'`
  ).pipe(Effect.map((rows) => rows[0].used))

/** Names of every site, for a process that runs all of them (the embedded default). */
export const siteNames = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ name: string }>`select name from site order by name`).pipe(
  Effect.map((rows) => rows.map((r) => r.name))
)
