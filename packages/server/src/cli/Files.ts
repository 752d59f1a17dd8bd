/**
 * `ccat files recheck` and `ccat files give-up`: an operator settles a file that packaging found
 * corrupt or missing at its SOURCE path. Recheck once the bytes are back (packaging reads them
 * once more); give up once they are lost for good (the file stays corrupt or missing as the
 * record of the loss and its path takes a new filing).
 */
import { OperationsApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Remote from "./Remote.js"

const fileId = Args.text({ name: "file-id" }).pipe(Args.withDescription("the RawDataFile packaging found corrupt or missing"))

const recheck = Command.make(
  "recheck",
  {
    ...Remote.options,
    id: fileId,
    reason: Options.text("reason").pipe(
      Options.withDescription("what was done to put the bytes back; recorded in the event log"),
      Options.optional
    )
  },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the file id", o.id)
      const reason = Option.getOrUndefined(o.reason)
      if (reason !== undefined && reason.length > 500) return yield* Remote.usage(o.json, "--reason must be at most 500 characters")
      const done = yield* Remote.withClient(
        o,
        (c) => c.operations.recheckFile({ path: { id }, payload: reason === undefined ? {} : { reason } })
      )
      if (o.json) return yield* Remote.printJson(OperationsApi.FaultyFileAction, done)
      yield* Console.log(
        `file ${done.rawDataFileId} (${done.relativePath}) filed again: packaging reads it once more against its filed checksum`
      )
    })
).pipe(
  Command.withDescription(
    "file again a file packaging found corrupt or missing, once its bytes are back at its SOURCE path (operators and admins)"
  )
)

const giveUp = Command.make(
  "give-up",
  {
    ...Remote.options,
    id: fileId,
    reason: Options.text("reason").pipe(Options.withDescription("why the filed bytes cannot come back; recorded in the event log")),
    lost: Options.boolean("lost").pipe(Options.withDescription("required: says that the file's filed bytes are lost for good"))
  },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the file id", o.id)
      if (!o.lost) return yield* Remote.usage(o.json, "giving a file up records its filed bytes as lost for good: say so with --lost")
      if (o.reason.length === 0 || o.reason.length > 500) return yield* Remote.usage(o.json, "--reason must be 1 to 500 characters")
      const done = yield* Remote.withClient(o, (c) => c.operations.giveUpFile({ path: { id }, payload: { reason: o.reason, lost: true } }))
      if (o.json) return yield* Remote.printJson(OperationsApi.FaultyFileAction, done)
      yield* Console.log(
        `file ${done.rawDataFileId} (${done.relativePath}) recorded as lost (${done.state}); its SOURCE path takes a new filing, the bytes there were left as they are`
      )
    })
).pipe(
  Command.withDescription(
    "record a file packaging found corrupt or missing as lost for good and release its SOURCE path (operators and admins)"
  )
)

/** `ccat files ...`. */
export const command = Command.make("files").pipe(
  Command.withDescription("settle files packaging found corrupt or missing on a running server"),
  Command.withSubcommands([recheck, giveUp])
)
