/**
 * Reading RawDataPackages with their journey (WAITING, TRANSFERRING, ARCHIVED, FAILED): what a
 * scientist or an operator looks at to know whether an observation's data is safe yet.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Conflict, NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { RawDataPackage } from "./RawData.js"
import { PackageJourney, Status } from "./Status.js"

/** A package as the API shows it: the stored row and its journey, derived from the status. */
export const PackageView = Schema.Struct({
  ...RawDataPackage.json.fields,
  journey: PackageJourney
}).annotations({ identifier: "RawDataPackageView" })
/** A package as the API shows it. */
export type PackageView = typeof PackageView.Type

/** Filters of the package list. */
export const PackageFilter = Schema.Struct({
  observationId: Schema.optional(Ids.ExecutedObsUnitId),
  moduleId: Schema.optional(Ids.InstrumentModuleId),
  status: Schema.optional(Status),
  journey: Schema.optional(PackageJourney),
  /** `raw`: packages of instruments' files; `product`: packages of processed DataProducts; absent: both. */
  kind: Schema.optional(Schema.Literal("raw", "product")),
  ...PageParams
})

/** A CORRUPT or MISSING archive copy that a repair replaces. */
export const BadArchiveCopy = Schema.Struct({
  id: Schema.UUID,
  status: Schema.Literal("CORRUPT", "MISSING"),
  site: Schema.String,
  location: Schema.String,
  path: Schema.String
}).annotations({ identifier: "BadArchiveCopy" })

/** What an operator's repair request started, per site holding bad copies. */
export const RepairRequested = Schema.Struct({
  packageId: Ids.RawDataPackageId,
  badCopies: Schema.Array(BadArchiveCopy),
  sites: Schema.Array(Schema.Struct({
    site: Schema.String,
    /** Good copies at the site the repair reads from, in the order it tries them (location names). */
    sources: Schema.Array(Schema.String),
    /** Whether a repair job was sent or moved forward now; else the site's repair planner sends it within seconds. */
    startedNow: Schema.Boolean
  })),
  /** Sites whose bad copies have no good copy at that site to repair from; they stay as they are. */
  withoutSource: Schema.Array(Schema.String)
}).annotations({ identifier: "RepairRequested" })
/** What an operator's repair request started. */
export type RepairRequested = typeof RepairRequested.Type

/** Reading RawDataPackages. */
export class PackagesApi extends HttpApiGroup.make("packages")
  .add(
    HttpApiEndpoint.get("list", "/packages")
      .setUrlParams(PackageFilter)
      .addSuccess(Page(PackageView))
      .addError(Unprocessable)
      .pipe(
        allow(
          ["instrument", "scientist", "operator", "admin"],
          "RawDataPackages in creation order, filtered by observation, module, status, journey or kind (raw: of instruments' files; product: of processed DataProducts)."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/packages/:id")
      .setPath(Schema.Struct({ id: Ids.RawDataPackageId }))
      .addSuccess(PackageView)
      .addError(NotFound)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "One RawDataPackage and its journey."))
  )
  .add(
    HttpApiEndpoint.post("repair", "/packages/:id/repair")
      .setPath(Schema.Struct({ id: Ids.RawDataPackageId }))
      .addSuccess(RepairRequested, { status: 202 })
      .addError(NotFound)
      .addError(Conflict)
      .addError(Unprocessable)
      .pipe(
        allow(
          ["operator", "admin"],
          "Repair the package's CORRUPT or MISSING archive copies now, from a good copy at the same site. 409 when it has no bad archive copy, 422 when no site holding one has a good copy to repair from."
        )
      )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "RawDataPackages and their journey to the archive.")
{}
