/**
 * Filing: an instrument registers what the telescope did (an ExecutedObsUnit) and the files it
 * wrote at a SOURCE location, in one request or as a stream of additions while it observes, and
 * closes the observation when it ends. Ids are the instrument's own UUIDs, so every call here is
 * idempotent: repeating it (after a timeout, from the client's outbox) answers with what is
 * stored; the same id with other values is a 409 naming the fields that differ.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import * as Checksum from "./Checksum.js"
import { DisplayName, JsonObject } from "./Fields.js"
import { Conflict, Forbidden, NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { ExecutedObsUnit, Quality } from "./Observational.js"
import { RawDataFile } from "./RawData.js"
import * as RelativePath from "./RelativePath.js"
import { Status } from "./Status.js"
import { strict } from "./ApiPayload.js"

/** The most files one request may file; larger observations add files in several requests. */
export const maxFilesPerRequest = 10_000

/**
 * A safe relative path for a file being filed, as a plain string (the checks of
 * `RelativePath.problemOfNew`, without the brand, so plain JavaScript and TypeScript callers
 * pass string literals).
 */
export const PathInput = Schema.String.pipe(
  Schema.filter((s) => RelativePath.problemOfNew(s) ?? true, {
    identifier: "RelativePath",
    description: "relative path: not absolute, no .. or empty segments, no NUL, at most 1024 bytes, no segment named like a temporary file"
  })
)

/** A checksum `algorithm:hex` as a plain string (the checks of `Checksum`, without the brand). */
export const ChecksumInput = Schema.String.pipe(
  Schema.filter((s) => Checksum.problem(s) ?? true, {
    identifier: "Checksum",
    description: "algorithm:hex, e.g. sha256 with 64 lower-case hex digits"
  })
)

/** A location's short name as a plain string. */
export const LocationName = Schema.String.pipe(
  Schema.filter((s) => Ids.shortNameProblem(s) ?? true, { identifier: "LocationName", description: "a data location's short name" })
)

/** A byte count: a non-negative integer. */
export const SizeInput = Schema.Number.pipe(
  Schema.int({ message: () => "a size must be a whole number of bytes" }),
  Schema.nonNegative({ message: () => "a size must not be negative" }),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER)
).annotations({ identifier: "ByteSize" })

/** One file to file: the instrument's id for it, its module (by name), where it is under the SOURCE location, size and checksum. */
export const FileSpec = Schema.Struct({
  /** The instrument's UUID for this file; re-filing it with the same values is a no-op. */
  id: Schema.UUID,
  /** The name of the InstrumentModule that wrote it (a module of the observation's instrument). */
  module: DisplayName,
  relativePath: PathInput,
  sizeBytes: SizeInput,
  checksum: ChecksumInput
}).annotations({ identifier: "FileSpec" })
/** One file to file. */
export type FileSpec = typeof FileSpec.Type

const Files = Schema.Array(FileSpec).pipe(Schema.maxItems(maxFilesPerRequest))

/** An observation to file, with none, some or all of its files. */
export const FileObservation = Schema.Struct({
  /** The instrument's UUID for this ExecutedObsUnit. */
  id: Schema.UUID,
  /** The planned observation (ObsUnit) this is an execution of; it names the instrument. */
  obsUnitId: Schema.UUID,
  startAt: Schema.Date,
  /** Absent or null while it is still running. */
  endAt: Schema.optional(Schema.NullOr(Schema.Date)),
  /** Defaults to `completed` when `endAt` is given, else `in_progress`. */
  status: Schema.optional(Status),
  conditions: Schema.optional(JsonObject),
  quality: Schema.optional(Quality),
  metadata: Schema.optional(JsonObject),
  /** The short name of the SOURCE location the files are at (required when there are files). */
  sourceLocation: Schema.optional(LocationName),
  files: Schema.optional(Files)
}).annotations({ ...strict, identifier: "FileObservation" })
/** An observation to file. */
export type FileObservation = typeof FileObservation.Type

/** Files to add to an open observation. */
export const AddFiles = Schema.Struct({
  sourceLocation: LocationName,
  files: Files.pipe(Schema.minItems(1))
}).annotations({ ...strict, identifier: "AddFiles" })

/** How an observation ended. */
export const CloseObservation = Schema.Struct({
  endAt: Schema.Date,
  status: Schema.Literal("completed", "failed"),
  quality: Schema.optional(Quality)
}).annotations({ ...strict, identifier: "CloseObservation" })

/** An observation as stored, with the files filed in the request (all of them when filed at once). */
export const FiledObservation = Schema.Struct({
  observation: ExecutedObsUnit.json,
  files: Schema.Array(RawDataFile.json)
}).annotations({ identifier: "FiledObservation" })

/** The files of a request as stored. */
export const FiledFiles = Schema.Struct({ files: Schema.Array(RawDataFile.json) }).annotations({ identifier: "FiledFiles" })

const idPath = Schema.Struct({ id: Ids.ExecutedObsUnitId })

/** Filters of the observation list. */
export const ObservationFilter = Schema.Struct({
  obsUnitId: Schema.optional(Ids.ObsUnitId),
  programId: Schema.optional(Ids.ObservingProgramId),
  instrumentId: Schema.optional(Ids.InstrumentId),
  status: Schema.optional(Status),
  quality: Schema.optional(Quality),
  /** Only observations that started at or after this instant. */
  startFrom: Schema.optional(Schema.Date),
  /** Only observations that started before this instant. */
  startTo: Schema.optional(Schema.Date),
  ...PageParams
})

/** Filing and reading observations. */
export class ObservationsApi extends HttpApiGroup.make("observations")
  .add(
    HttpApiEndpoint.post("file", "/observations")
      .setPayload(FileObservation)
      .addSuccess(FiledObservation)
      .addError(Conflict)
      .addError(Unprocessable)
      .addError(Forbidden)
      .pipe(
        allow(
          ["instrument", "admin"],
          "File an ExecutedObsUnit with none, some or all of its RawDataFiles, all or nothing. Idempotent: the same ids and values answer with the stored record; other values under a stored id are a 409 naming the fields."
        )
      )
  )
  .add(
    HttpApiEndpoint.post("addFiles", "/observations/:id/files")
      .setPath(idPath)
      .setPayload(AddFiles)
      .addSuccess(FiledFiles)
      .addError(NotFound)
      .addError(Conflict)
      .addError(Unprocessable)
      .addError(Forbidden)
      .pipe(allow(["instrument", "admin"], "Add RawDataFiles to an open observation, all or nothing. Idempotent per file id."))
  )
  .add(
    HttpApiEndpoint.post("close", "/observations/:id/close")
      .setPath(idPath)
      .setPayload(CloseObservation)
      .addSuccess(ExecutedObsUnit.json)
      .addError(NotFound)
      .addError(Conflict)
      .addError(Unprocessable)
      .addError(Forbidden)
      .pipe(
        allow(
          ["instrument", "admin"],
          "Close an observation: its end time, final status and quality. Idempotent: closing again the same way answers with the stored record."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/observations")
      .setUrlParams(ObservationFilter)
      .addSuccess(Page(ExecutedObsUnit.json))
      .addError(Unprocessable)
      .pipe(
        allow(
          ["instrument", "scientist", "operator", "admin"],
          "Observations in order of start time, filtered; scientists see their programs', instruments their instruments'."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/observations/:id")
      .setPath(idPath)
      .addSuccess(ExecutedObsUnit.json)
      .addError(NotFound)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "One observation."))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Filing observations and their files, and reading them back.")
{}
