/**
 * A bundle's new transfer attempt, made in one round trip under its route's lock: the checks and
 * the attempt's insert are one statement, so the attempt exists only where the checks allow it.
 */
import { EventLog, type Ids, type TransferPolicy } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Routes from "../Routes.js"
import type * as Sites from "../Sites.js"
import type { Attempt, Bundle } from "../TransferAttempts.js"
import { type Checks, checksSql, circuitLetsThroughSql, decided } from "./AttemptChecks.js"
import * as OneRoundTrip from "./OneRoundTrip.js"

/** A new attempt, created scheduled and started with its three events, in one round trip under the route's lock. */
export const startNew = (
  site: string,
  bundle: Bundle,
  route: Routes.Route,
  source: { readonly id: string; readonly locationId: string },
  to: Sites.Location,
  previous: Attempt | undefined,
  policy: TransferPolicy.TransferPolicyConfig
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const actor = `worker:${site}`
    const [, rows] = yield* OneRoundTrip.run(sql, [
      sql`select pg_advisory_xact_lock(hashtext(${Routes.routeLockKey(route.id)}))`,
      sql`
        with ${checksSql(sql, bundle.id, route.id, source.id, to.id, undefined, policy)},
        attempt as (
          insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, previous_attempt_id, attempt, adapter, status, started_at)
          select ${bundle.id}::uuid, ${route.id}::uuid, ${source.locationId}::uuid, ${to.id}::uuid, ${previous?.id ?? null}::uuid,
                 ${(previous?.attempt ?? 0) + 1}::int, ${route.adapter}::text, 'in_progress', now()
          from checks c
          where c.copy = 'PRESENT' and c.running < ${route.maxConcurrentTransfers}::int and c.open = 0
            and ${circuitLetsThroughSql(sql, "c.route_last", "c.route_probing", policy)}
            and ${circuitLetsThroughSql(sql, "c.to_last", "c.to_probing", policy)}
          returning id, attempt),
        steps as (
          select a.id, s.from_state, s.to_state from attempt a
          cross join (values (1, null::text, 'pending'), (2, 'pending', 'scheduled'), (3, 'scheduled', 'in_progress')) as s(n, from_state, to_state)
          order by s.n),
        logged as (${
          EventLog.appendFrom(sql, {
            kind: "DataTransfer",
            rows: "steps",
            from: { column: "from_state" },
            to: { column: "to_state" },
            actor
          })
        })
        select c.copy, c.route_last, c.route_probing, c.to_last, c.to_probing, c.running, c.open, a.id::text as attempt_id, a.attempt
        from checks c left join attempt a on true`
    ])
    const row = rows![0]! as {
      copy: string | null
      route_last: Checks["routeLast"]
      route_probing: number
      to_last: Checks["toLast"]
      to_probing: number
      running: number
      open: number
      attempt_id: string | null
      attempt: number | null
    }
    const verdict = decided(site, route, {
      copy: row.copy,
      routeLast: row.route_last,
      routeProbing: row.route_probing,
      toLast: row.to_last,
      toProbing: row.to_probing,
      running: row.running,
      open: row.open
    }, policy)
    if (row.attempt_id !== null) {
      // the statement's rule and circuitOf's must agree; an attempt made anyway is taken, and said
      if (!("go" in verdict)) {
        yield* Effect.logWarning(`bundle ${bundle.id}: attempt created although ${"gone" in verdict ? verdict.gone : verdict.why}`)
      }
      return { attempt: { id: row.attempt_id as Ids.DataTransferId, attempt: row.attempt! } } as const
    }
    if ("go" in verdict) return { wait: 1_000, why: "the checks allowed no attempt this time" } as const
    return verdict
  })
