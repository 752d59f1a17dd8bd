/**
 * `ccat retry ENTITY ID`: sends a failed package, bundle or staging request back to pending, or
 * starts a new attempt of a failed transfer, through the API's checked transition (refused with
 * exit 3 unless the item is failed). The reason goes to the event log.
 */
import { OperationsApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Remote from "./Remote.js"

/** `ccat retry`. */
export const command = Command.make(
  "retry",
  {
    ...Remote.options,
    entity: Args.choice(OperationsApi.RetryableEntity.literals.map((e) => [e, e] as const), { name: "entity" }).pipe(
      Args.withDescription(`what to retry: ${OperationsApi.RetryableEntity.literals.join(", ")}`)
    ),
    id: Args.text({ name: "id" }).pipe(Args.withDescription("its id")),
    reason: Options.text("reason").pipe(Options.withDescription("why; recorded in the event log"), Options.optional)
  },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the id", o.id)
      const reason = Option.getOrUndefined(o.reason)
      if (reason !== undefined && reason.length > 500) return yield* Remote.usage(o.json, "--reason must be at most 500 characters")
      const retried = yield* Remote.withClient(
        o,
        (c) => c.operations.retry({ payload: { entity: o.entity, id, ...(reason === undefined ? {} : { reason }) } })
      )
      if (o.json) return yield* Remote.printJson(OperationsApi.Retried, retried)
      yield* Console.log(
        retried.newAttemptId === undefined
          ? `${retried.entity} ${retried.id}: ${retried.from} -> ${retried.to}`
          : `${retried.entity} ${retried.id} retried as a new attempt ${retried.newAttemptId} (${retried.to})`
      )
    })
).pipe(Command.withDescription("retry a failed package, bundle, staging request or transfer attempt (operators and admins)"))
