/**
 * Staging: a scientist asks for archived observations or packages to be made available at a
 * PROCESSING location, then follows the request until it is completed (or failed, with why).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Conflict, NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { Checksum } from "./Checksum.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { LocationName } from "./ObservationsApi.js"
import { RelativePath } from "./RelativePath.js"
import { StagingRequest, StagingRequestItem } from "./Staging.js"
import { Status } from "./Status.js"
import { strict } from "./ApiPayload.js"

/** What to stage and where. At least one observation or package. */
export const CreateStagingRequest = Schema.Struct({
  /** The short name of a PROCESSING location. */
  location: LocationName,
  observationIds: Schema.optional(Schema.Array(Schema.UUID).pipe(Schema.maxItems(10_000))),
  packageIds: Schema.optional(Schema.Array(Schema.UUID).pipe(Schema.maxItems(10_000))),
  /** When the staged copies may be cleaned up; the server's default when absent. */
  expiresAt: Schema.optional(Schema.Date)
}).annotations({ ...strict, identifier: "CreateStagingRequest" })

/** A staging request and what it asks for. */
export const StagingRequestView = Schema.Struct({
  ...StagingRequest.json.fields,
  items: Schema.Array(StagingRequestItem.json)
}).annotations({ identifier: "StagingRequestView" })

/**
 * One file a completed request staged, where the scientist finds it. The file stays there until
 * the request is released or expires (a later request for the same data keeps it for itself).
 */
export const StagedFile = Schema.Struct({
  rawDataFileId: Ids.RawDataFileId,
  executedObsUnitId: Ids.ExecutedObsUnitId,
  /** The path the instrument filed it under, inside its observation. */
  relativePath: RelativePath,
  /** Its staged copy's key at the PROCESSING location (shared by the requests that staged the same file). */
  key: Schema.String,
  /**
   * The absolute local path on the PROCESSING location's host, for a disk location: inside the
   * request's own folder `<root>/<program>/<request id>/<executedObsUnitId>/<relativePath>`
   * (requests served by earlier releases: the copy's path); null elsewhere (use `key`).
   */
  localPath: Schema.NullOr(Schema.String),
  sizeBytes: Schema.Number.pipe(Schema.nonNegative()),
  checksum: Checksum
}).annotations({ identifier: "StagedFile" })
/** One staged file. */
export type StagedFile = typeof StagedFile.Type

/**
 * A page of a request's staged files, with the request's state: the files are listed once it is
 * `completed`; before that (or when it `failed`) the page is empty and `errorMessage` says why.
 */
export const StagedFilesPage = Schema.Struct({
  ...Page(StagedFile).fields,
  requestId: Ids.StagingRequestId,
  status: Status,
  /** The PROCESSING location's short name. */
  location: Schema.String,
  /** Until when the files are kept for this request at most (unless it is released sooner). */
  expiresAt: Schema.NullOr(Schema.DateTimeUtc),
  /** When the request was released; its files are no longer listed then. */
  releasedAt: Schema.optionalWith(Schema.NullOr(Schema.DateTimeUtc), { default: () => null }),
  errorMessage: Schema.NullOr(Schema.String)
}).annotations({ identifier: "StagedFilesPage" })
/** A page of staged files. */
export type StagedFilesPage = typeof StagedFilesPage.Type

/** Filters of the staging-request list. */
export const StagingFilter = Schema.Struct({
  status: Schema.optional(Status),
  ...PageParams
})

/** Creating and following StagingRequests. */
export class StagingApi extends HttpApiGroup.make("staging")
  .add(
    HttpApiEndpoint.post("create", "/staging-requests")
      .setPayload(CreateStagingRequest)
      .addSuccess(StagingRequestView, { status: 201 })
      .addError(Unprocessable)
      .pipe(
        allow(
          ["scientist", "admin"],
          "Ask for observations or packages to be staged at a PROCESSING location; scientists only for their programs."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/staging-requests")
      .setUrlParams(StagingFilter)
      .addSuccess(Page(StagingRequestView))
      .addError(Unprocessable)
      .pipe(allow(["scientist", "operator", "admin"], "Staging requests in creation order; a scientist sees its own."))
  )
  .add(
    HttpApiEndpoint.get("get", "/staging-requests/:id")
      .setPath(Schema.Struct({ id: Ids.StagingRequestId }))
      .addSuccess(StagingRequestView)
      .addError(NotFound)
      .pipe(allow(["scientist", "operator", "admin"], "One staging request with its items and status."))
  )
  .add(
    HttpApiEndpoint.get("files", "/staging-requests/:id/files")
      .setPath(Schema.Struct({ id: Ids.StagingRequestId }))
      .setUrlParams(Schema.Struct(PageParams))
      .addSuccess(StagedFilesPage)
      .addError(NotFound)
      .addError(Unprocessable)
      .pipe(
        allow(
          ["scientist", "operator", "admin"],
          "The files a completed request staged, in key order, cursor-paged: each file's relative path, its absolute local path at the PROCESSING location (disk locations), size and checksum, and the request's expiry. Empty until the request is completed."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("release", "/staging-requests/:id/release")
      .setPath(Schema.Struct({ id: Ids.StagingRequestId }))
      .addSuccess(StagingRequestView)
      .addError(NotFound)
      .addError(Conflict)
      .pipe(
        allow(
          ["scientist", "operator", "admin"],
          "Release a request once processing is done: it no longer keeps its staged files, and cleanup deletes those no other live request needs. Idempotent (a released request answers as it is); a scientist releases only its own requests (another's is not found); a request still being served is refused (409), a failed one is released as it is."
        )
      )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Staging archived data for processing.")
{}
