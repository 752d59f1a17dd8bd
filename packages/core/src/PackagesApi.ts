/**
 * Reading RawDataPackages with their journey (WAITING, TRANSFERRING, ARCHIVED, FAILED): what a
 * scientist or an operator looks at to know whether an observation's data is safe yet.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { NotFound, Unprocessable } from "./ApiErrors.js"
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
  ...PageParams
})

/** Reading RawDataPackages. */
export class PackagesApi extends HttpApiGroup.make("packages")
  .add(
    HttpApiEndpoint.get("list", "/packages")
      .setUrlParams(PackageFilter)
      .addSuccess(Page(PackageView))
      .addError(Unprocessable)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "RawDataPackages in creation order, filtered by observation, module, status or journey."))
  )
  .add(
    HttpApiEndpoint.get("get", "/packages/:id")
      .setPath(Schema.Struct({ id: Ids.RawDataPackageId }))
      .addSuccess(PackageView)
      .addError(NotFound)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "One RawDataPackage and its journey."))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "RawDataPackages and their journey to the archive.")
{}
