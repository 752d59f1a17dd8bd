/**
 * An operator's retry taken up by the transfer worker. The retry made its attempt already
 * (`pending`, linked to the attempt it retries); the worker gives it the route and destination it
 * chooses now, or fails it when its copy cannot be sent from, so it never stays pending for ever.
 * Rare, so it runs as a transaction of its own statements rather than one round trip.
 */
import { type Ids, type TransferPolicy, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Routes from "../Routes.js"
import type * as Sites from "../Sites.js"
import type { Attempt, Bundle } from "../TransferAttempts.js"
import { type Checks, checksSql, decided } from "./AttemptChecks.js"

/** An operator's retry attempt (`pending`) taken up with the route and destination chosen now, in a transaction under the route's lock. */
export const takeUpRetry = (
  site: string,
  bundle: Bundle,
  route: Routes.Route,
  source: { readonly id: string; readonly locationId: string },
  to: Sites.Location,
  policy: TransferPolicy.TransferPolicyConfig,
  retry: Attempt
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* Routes.lockRoute(route.id)
        const [checks] = yield* sql<Checks>`with ${
          checksSql(sql, bundle.id, route.id, source.id, to.id, retry.id, policy)
        } select * from checks`
        const verdict = decided(site, route, checks!, policy)
        if ("gone" in verdict) {
          // The operator's attempt cannot run from here: it ends failed rather than pending for ever.
          yield* Transitions.transition({
            entity: "DataTransfer",
            id: retry.id,
            from: "pending",
            to: "failed",
            actor: `worker:${site}`,
            set: {
              errorReason: "SourceMissing",
              errorMessage: `the bundle cannot be sent: ${verdict.gone}`,
              retryable: false,
              finishedAt: new Date()
            }
          })
          return verdict
        }
        if (!("go" in verdict)) return verdict
        const actor = `worker:${site}`
        const taken = yield* sql<{ id: Ids.DataTransferId; attempt: number }>`
          update data_transfer set route_id = ${route.id}, from_location_id = ${source.locationId}, to_location_id = ${to.id},
            adapter = ${route.adapter}, updated_at = now()
          where id = ${retry.id} and status = 'pending' returning id, attempt`
        if (taken.length === 0) return { wait: 1_000, why: "the operator's retry attempt moved on meanwhile" } as const
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: retry.id,
          from: "pending",
          to: "scheduled",
          actor,
          details: { retry: "operator's attempt taken up" }
        })
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: retry.id,
          from: "scheduled",
          to: "in_progress",
          actor,
          set: { startedAt: new Date() }
        })
        return { attempt: taken[0]! } as const
      })
    ))
