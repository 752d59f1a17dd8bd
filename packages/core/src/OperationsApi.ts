/**
 * Operator actions on the lifecycle: retrying something that failed for good, releasing a
 * SOURCE path whose file changed after packaging, and settling a file packaging found corrupt or
 * missing (filed again once its bytes are back, or given up as lost). A retry is a checked transition (failed →
 * pending, recorded in the event log) or, for a transfer attempt, whose failed state is final, a
 * new attempt linked to the failed one.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Conflict, NotFound } from "./ApiErrors.js"
import { allow, Authentication } from "./ApiSecurity.js"
import { strict } from "./ApiPayload.js"

/** What can be retried. */
export const RetryableEntity = Schema.Literal("RawDataPackage", "DataTransferPackage", "DataTransfer", "StagingRequest")
/** What can be retried. */
export type RetryableEntity = typeof RetryableEntity.Type

/** A retry of one failed item. */
export const Retry = Schema.Struct({
  entity: RetryableEntity,
  id: Schema.UUID,
  /** Why; recorded in the event log. */
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(500)))
}).annotations({ ...strict, identifier: "Retry" })

/** What the retry did. */
export const Retried = Schema.Struct({
  entity: RetryableEntity,
  id: Schema.UUID,
  from: Schema.String,
  to: Schema.String,
  /** For a DataTransfer: the new attempt's id. */
  newAttemptId: Schema.optional(Schema.UUID)
}).annotations({ identifier: "Retried" })

/** Why an operator gives up a SOURCE copy found changed or gone. */
export const ReleaseSourcePath = Schema.Struct({
  /** Recorded in the event log: what was done with the bytes now at the path. */
  reason: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500))
}).annotations({ ...strict, identifier: "ReleaseSourcePath" })

/** A SOURCE copy given up and its path released. */
export const ReleasedSourcePath = Schema.Struct({
  copyId: Schema.UUID,
  rawDataFileId: Schema.UUID,
  location: Schema.String,
  path: Schema.String
}).annotations({ identifier: "ReleasedSourcePath" })

/** Why an operator files a file packaging found corrupt or missing again. */
export const RecheckFile = Schema.Struct({
  /** Recorded in the event log: what was done to put the bytes back. */
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(500)))
}).annotations({ ...strict, identifier: "RecheckFile" })

/** An operator's statement that a file packaging found corrupt or missing is lost for good. */
export const GiveUpFile = Schema.Struct({
  /** Recorded in the event log: why the filed bytes cannot come back. */
  reason: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(500)),
  /** Must be `true`: the caller says in so many words that the file's filed bytes are lost. */
  lost: Schema.Literal(true)
}).annotations({ ...strict, identifier: "GiveUpFile" })

/** What an action on a faulty file did. */
export const FaultyFileAction = Schema.Struct({
  rawDataFileId: Schema.UUID,
  relativePath: Schema.String,
  /** `filed` after a recheck; still `corrupt` or `missing` after giving up. */
  state: Schema.String
}).annotations({ identifier: "FaultyFileAction" })

/** Operator actions. */
export class OperationsApi extends HttpApiGroup.make("operations")
  .add(
    HttpApiEndpoint.post("retry", "/retries")
      .setPayload(Retry)
      .addSuccess(Retried)
      .addError(NotFound)
      .addError(Conflict)
      .pipe(
        allow(
          ["operator", "admin"],
          "Retry a failed package, bundle or staging request (failed → pending), or a failed transfer attempt (a new attempt). Anything not failed is a 409."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("releaseSourcePath", "/copies/:id/release")
      .setPath(Schema.Struct({ id: Schema.UUID }))
      .setPayload(ReleaseSourcePath)
      .addSuccess(ReleasedSourcePath)
      .addError(NotFound)
      .addError(Conflict)
      .pipe(
        allow(
          ["operator", "admin"],
          "Give up a file's SOURCE copy that cleanup found changed (CORRUPT) or gone (MISSING): it becomes DELETED with the bytes at its path left as they are, and the path takes a new filing. Only once the file's package is ARCHIVED; anything else is a 409."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("recheckFile", "/files/:id/recheck")
      .setPath(Schema.Struct({ id: Schema.UUID }))
      .setPayload(RecheckFile)
      .addSuccess(FaultyFileAction)
      .addError(NotFound)
      .addError(Conflict)
      .pipe(
        allow(
          ["operator", "admin"],
          "File again a file packaging found corrupt or missing (its bytes were put back at its SOURCE path): packaging reads it once more against its filed checksum. Anything else is a 409."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("giveUpFile", "/files/:id/give-up")
      .setPath(Schema.Struct({ id: Schema.UUID }))
      .setPayload(GiveUpFile)
      .addSuccess(FaultyFileAction)
      .addError(NotFound)
      .addError(Conflict)
      .pipe(
        allow(
          ["operator", "admin"],
          "Record a file packaging found corrupt or missing as lost for good (`lost: true`): it keeps its state, the event names who and why, and its SOURCE path takes a new filing; the bytes there are left as they are. Anything else is a 409."
        )
      )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Operator actions.")
{}
