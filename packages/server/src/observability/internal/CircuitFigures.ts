/**
 * How long each transfer circuit breaker has been open, per route and per destination location,
 * for the `CcatCircuitOpen` alert. The breaker keeps no state of its own (`lifecycle/Routes.ts`
 * derives it from the DataTransfer rows), so neither does this: a circuit is open (or half-open,
 * probing) while at least `breakerThreshold` attempts failed since the last completed one, and it
 * opened when the failure that made that count finished. Attempts a stopping worker cut short
 * (`Interrupted`) say nothing of the route, as for the breaker. Each figure is two descents of
 * the breaker's own partial indexes (0012's `data_transfer_circuit_*`): the latest completed
 * attempt, then the failures after it up to the threshold, so a scrape costs the same whatever
 * the history of the route.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Family } from "../Exposition.js"
import { gauge } from "./OpsDbFigures.js"

/**
 * Seconds the circuit of `column = key` has been open, 0 when closed, as SQL over a key column
 * of the outer query (`r.id` for routes, `l.id` for locations).
 */
const openSeconds = (column: "route_id" | "to_location_id", key: string, threshold: number) => `
  coalesce((select greatest(0, extract(epoch from now() - o.finished_at))::float8 from (
    select d.finished_at from data_transfer d
    where d.${column} = ${key} and d.status in ('completed', 'failed') and d.finished_at is not null
      and d.status = 'failed' and coalesce(d.error_reason, '') <> 'Interrupted'
      and d.finished_at > coalesce((
        select s.finished_at from data_transfer s
        where s.${column} = ${key} and s.status in ('completed', 'failed') and s.finished_at is not null and s.status = 'completed'
        order by s.finished_at desc limit 1), '-infinity')
    order by d.finished_at asc offset ${threshold - 1} limit 1) o), 0)`

/** The circuit families; `threshold` is the transfer policy's `breakerThreshold`. */
export const collect = (threshold: number): Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const n = Math.max(1, Math.floor(threshold))
    const routes = yield* sql.unsafe<{ src: string; dst: string; via: string; adapter: string; open: number }>(
      `select f.name as src, t.name as dst, coalesce(v.name, '') as via, r.adapter, ${openSeconds("route_id", "r.id", n)} as open
       from route r join site f on f.id = r.from_site_id join site t on t.id = r.to_site_id
       left join site v on v.id = r.via_site_id
       order by 1, 2, 3, 4`
    )
    const locations = yield* sql.unsafe<{ site: string; location: string; ltype: string; tech: string; open: number }>(
      `select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
         ${openSeconds("to_location_id", "l.id", n)} as open
       from data_location l join site s on s.id = l.site_id
       where l.type in ('BUFFER', 'LONG_TERM_ARCHIVE')
       order by 1, 2`
    )
    // Two routes may differ only in priority: one series per label set, the longest open wins.
    const byRoute = new Map<string, { labels: Record<string, string>; value: number }>()
    for (const r of routes) {
      const labels = { from: r.src, to: r.dst, via: r.via, adapter: r.adapter }
      const key = JSON.stringify(labels)
      byRoute.set(key, { labels, value: Math.max(byRoute.get(key)?.value ?? 0, Number(r.open)) })
    }
    return [
      gauge(
        "ccat_route_circuit_open_seconds",
        "Seconds a route's transfer circuit breaker has been open (or half-open, probing), 0 when closed.",
        [...byRoute.values()]
      ),
      gauge(
        "ccat_location_circuit_open_seconds",
        "Seconds the transfer circuit breaker towards a location has been open (or half-open, probing), 0 when closed.",
        locations.map((l) => ({ labels: { site: l.site, location: l.location, type: l.ltype, technology: l.tech }, value: Number(l.open) }))
      )
    ]
  })
