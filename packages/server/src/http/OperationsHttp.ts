/**
 * The operations group: an operator's retry of a failed item. Packages, bundles and staging
 * requests move failed → pending through `Transitions` (checked, with the event in the same
 * transaction); a failed transfer attempt is final, so its retry is a new attempt linked to it.
 */
import { Api, ApiErrors, ApiSecurity, type Ids, Repositories, Transitions } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Access from "./Access.js"

const notFailed = (entity: string, id: string, actual: string) =>
  new ApiErrors.Conflict({ reason: "StateConflict", entity, id, fields: ["status"], message: `${entity} ${id} is ${actual}, not failed: only failed items are retried` })

/** The operations group's handlers. */
export const OperationsHttpLive = HttpApiBuilder.group(Api.Api, "operations", (handlers) =>
  handlers.handle("retry", ({ payload }) =>
    Effect.gen(function* () {
      const p = yield* ApiSecurity.CurrentAccount
      const details = payload.reason === undefined ? { retry: true } : { retry: true, reason: payload.reason }
      if (payload.entity !== "DataTransfer") {
        // The three share the operation machine and an errorMessage column, so one call fits all;
        // the entity the row is looked up by is the request's, whatever the static type says.
        const moved = yield* Transitions.transition({
          entity: payload.entity as "RawDataPackage",
          id: payload.id as Ids.RawDataPackageId,
          from: "failed",
          to: "pending",
          actor: p.name,
          details,
          set: { errorMessage: null }
        }).pipe(
          Effect.catchTag("TransitionError", (e): Effect.Effect<never, ApiErrors.NotFound | ApiErrors.Conflict> =>
            e.reason === "NotFound" ? Effect.fail(Access.notFound(payload.entity, payload.id)) : Effect.fail(notFailed(payload.entity, payload.id, e.actual ?? "in another state"))
          ),
          Effect.catchTag("SqlError", Effect.die)
        )
        return { entity: payload.entity, id: moved.id, from: "failed", to: "pending" }
      }
      const sql = yield* SqlClient.SqlClient
      return yield* sql.withTransaction(
        Effect.gen(function* () {
          const found = yield* Repositories.dataTransfers.findById(payload.id as Ids.DataTransferId)
          if (Option.isNone(found)) return yield* Access.notFound("DataTransfer", payload.id)
          const old = found.value
          if (old.status !== "failed") return yield* notFailed("DataTransfer", payload.id, old.status)
          const later = yield* sql<{ id: string }>`select id from data_transfer where previous_attempt_id = ${old.id} for update`
          if (later.length > 0) {
            return yield* new ApiErrors.Conflict({ reason: "StateConflict", entity: "DataTransfer", id: payload.id, fields: [], message: `attempt ${payload.id} was already retried by attempt ${later[0].id}` })
          }
          const next = yield* Repositories.dataTransfers.insert({
            dataTransferPackageId: old.dataTransferPackageId,
            rawDataPackageId: old.rawDataPackageId,
            routeId: old.routeId,
            fromLocationId: old.fromLocationId,
            toLocationId: old.toLocationId,
            previousAttemptId: old.id,
            attempt: old.attempt + 1,
            adapter: old.adapter
          }).pipe(Effect.catchTag("ConstraintError", Effect.die))
          yield* Effect.logInfo(`transfer attempt ${old.id} retried by ${p.name} as attempt ${next.attempt} (${next.id})`)
          return { entity: payload.entity, id: old.id, from: "failed", to: "pending", newAttemptId: next.id }
        })
      ).pipe(Effect.catchTag("SqlError", Effect.die))
    })
  )
)
