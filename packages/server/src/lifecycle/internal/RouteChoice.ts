/**
 * The transfer's route choice: the best route whose circuit is not open, to a writable BUFFER
 * with room at its next hop whose circuit is not open either; or how long to wait and why.
 */
import { TransferPolicy } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Routes from "../Routes.js"
import * as Sites from "../Sites.js"
import { Storages } from "../Storages.js"

/**
 * Picks the first route whose circuit lets work through and a destination BUFFER for it. Every
 * route's circuit, every next hop's buffers with their circuits and fill are read in one
 * statement, whatever the number of routes: each round trip counts from a site far away.
 */
export const choose = (site: string, routes: ReadonlyArray<Routes.Route>, bytes: number, policy: TransferPolicy.TransferPolicyConfig) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    let waitMs = 30_000
    const reasons: Array<string> = []
    const hops = [...new Set(routes.map((r) => r.nextHop))]
    const rows = routes.length === 0 ? [] : yield* sql<{
      kind: "route" | "location"
      n: number
      hop: string | null
      location: Sites.Location | null
      last: TransferPolicy.CircuitFacts["last"]
      probing: number
      used: number
    }>`
      select 'route' as kind, k.n::int as n, null::text as hop, null::json as location,
        ${Routes.circuitFactsSql(sql, "route_id", sql`k.id`, policy)}, 0::float8 as used
      from unnest(${routes.map((r) => r.id)}::uuid[]) with ordinality as k(id, n)
      union all
      select 'location' as kind, (row_number() over (order by h.n, l.priority, l.name))::int as n, h.name as hop, ${
        Sites.locationJson(sql)
      } as location,
        ${Routes.circuitFactsSql(sql, "to_location_id", sql`l.id`, policy)},
        case when l.capacity_bytes is null then 0 else (
          select coalesce(sum(c.size_bytes), 0)::float8 from physical_copy c where c.data_location_id = l.id and c.status <> 'DELETED') end as used
      from unnest(${hops}::text[]) with ordinality as h(name, n)
      join site s on s.name = h.name join data_location l on l.site_id = s.id and l.type = 'BUFFER'
      order by kind desc, n`
    const routeCircuits = rows.filter((r) => r.kind === "route").map((r) => TransferPolicy.circuitOf(r, policy))
    const buffers = rows.filter((r) => r.kind === "location" && r.location !== null && r.location.writable)
    for (const [i, route] of routes.entries()) {
      const c = routeCircuits[i]!
      if (c.state === "open") {
        waitMs = Math.min(waitMs, c.retryInMs)
        reasons.push(`route ${route.fromSite}→${route.toSite} (${route.adapter}) open: ${c.reason}`)
        continue
      }
      for (const b of buffers.filter((b) => b.hop === route.nextHop)) {
        const loc = b.location!
        if (loc.capacityBytes !== null && b.used + bytes > loc.capacityBytes) continue
        const lc = TransferPolicy.circuitOf(b, policy)
        if (lc.state === "open") {
          waitMs = Math.min(waitMs, lc.retryInMs)
          reasons.push(`location ${loc.name} open: ${lc.reason}`)
          continue
        }
        if (storages.rootOf(loc) === undefined) continue
        return { route, destination: loc, waitMs, why: "" }
      }
      reasons.push(`no writable BUFFER with room at ${route.nextHop}`)
    }
    return { route: undefined, destination: undefined, waitMs, why: reasons.join("; ") || `no route leaves ${site} towards an archive` }
  })
