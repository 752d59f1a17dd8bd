/**
 * What the telescope-side relay serves: the `observations` group of the main's contract, under
 * the same paths (so instruments file through it with the same `@ccat/client`, just another
 * base URL), and its own `relay` group with the backlog and the filings the main refused. The
 * relay serves no other reads: listing and reading observations answer with an error that says
 * to ask the main, and any other path with a 404 saying the same.
 */
import { ApiErrors, ApiSecurity, ObservationsApi } from "@ccat/core"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"

/** A filing the main refused, kept at the relay with the main's answer. */
export const RefusedFiling = Schema.Struct({
  /** The relay's id of the filing, also the `Idempotency-Key` it was forwarded with. */
  id: Schema.String,
  kind: Schema.Literal("file", "addFiles", "close"),
  observationId: Schema.String,
  accountName: Schema.String,
  acceptedAt: Schema.String,
  refusedAt: Schema.String,
  /** The main's HTTP status, when it answered with one. */
  status: Schema.NullOr(Schema.Number),
  /** The main's reason, as its error said it. */
  reason: Schema.String,
  /** The request body the relay forwarded, to fix and file again. */
  payload: Schema.Unknown
}).annotations({ identifier: "RefusedFiling" })

/** The relay's state: its backlog, its reference data, the refused filings. */
export const RelayStatus = Schema.Struct({
  main: Schema.String,
  backlog: Schema.Struct({
    /** Filings accepted but not yet taken by the main. */
    pending: Schema.Number,
    /** Age of the oldest of them, in seconds (0 when none). */
    oldestPendingAgeSeconds: Schema.Number,
    forwarded: Schema.Number,
    refused: Schema.Number,
    /** Why the oldest pending filing did not go through yet, if it was tried. */
    lastError: Schema.NullOr(Schema.String)
  }),
  reference: Schema.Struct({
    /** When the relay last pulled reference data and tokens from the main. */
    pulledAt: Schema.NullOr(Schema.String),
    ageSeconds: Schema.NullOr(Schema.Number),
    lastSyncError: Schema.NullOr(Schema.String)
  }),
  /** The newest refused filings (at most 100). */
  refused: Schema.Array(RefusedFiling)
}).annotations({ identifier: "RelayStatus" })
/** The relay's state. */
export type RelayStatus = typeof RelayStatus.Type

/** The relay's own endpoints. */
export class RelayGroup extends HttpApiGroup.make("relay")
  .add(
    HttpApiEndpoint.get("status", "/relay/status")
      .addSuccess(RelayStatus)
      .pipe(
        ApiSecurity.allow(
          ["instrument", "operator", "admin"],
          "The relay's backlog, reference data age, and the filings the main refused, with the main's reasons."
        )
      )
  )
  .middleware(ApiSecurity.Authentication)
  .annotate(OpenApi.Description, "The telescope-side relay: its backlog and refused filings.")
{}

/** The relay's whole API: filing as at the main, plus its status. */
export class RelayApi extends HttpApi.make("ccat-relay")
  .add(ObservationsApi.ObservationsApi)
  .add(RelayGroup)
  .addError(ApiErrors.BadRequest)
  .addError(ApiErrors.PayloadTooLarge)
  .prefix("/api/v1")
  .annotate(OpenApi.Title, "CCAT Data Center relay")
{}
