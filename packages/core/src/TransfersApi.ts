/**
 * Reading what moves between sites: DataTransferPackages (bundles) with their members, and
 * every DataTransfer attempt with its bytes, throughput and error. For operators watching
 * the links.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { DataTransfer, DataTransferPackage } from "./RawData.js"
import { Status } from "./Status.js"

/** A bundle and the RawDataPackages it holds. */
export const BundleView = Schema.Struct({
  ...DataTransferPackage.json.fields,
  packageIds: Schema.Array(Ids.RawDataPackageId)
}).annotations({ identifier: "DataTransferPackageView" })

/** Filters of the bundle list. */
export const BundleFilter = Schema.Struct({
  status: Schema.optional(Status),
  packageId: Schema.optional(Ids.RawDataPackageId),
  ...PageParams
})

/** Filters of the attempt list. */
export const AttemptFilter = Schema.Struct({
  bundleId: Schema.optional(Ids.DataTransferPackageId),
  packageId: Schema.optional(Ids.RawDataPackageId),
  locationId: Schema.optional(Ids.DataLocationId),
  status: Schema.optional(Status),
  ...PageParams
})

const roles = ["operator", "admin"] as const

/** Reading bundles and transfer attempts. */
export class TransfersApi extends HttpApiGroup.make("transfers")
  .add(
    HttpApiEndpoint.get("listBundles", "/bundles")
      .setUrlParams(BundleFilter)
      .addSuccess(Page(BundleView))
      .addError(Unprocessable)
      .pipe(allow(roles, "DataTransferPackages (bundles) in creation order, with their member packages."))
  )
  .add(
    HttpApiEndpoint.get("getBundle", "/bundles/:id")
      .setPath(Schema.Struct({ id: Ids.DataTransferPackageId }))
      .addSuccess(BundleView)
      .addError(NotFound)
      .pipe(allow(roles, "One bundle with its member packages."))
  )
  .add(
    HttpApiEndpoint.get("listAttempts", "/transfers")
      .setUrlParams(AttemptFilter)
      .addSuccess(Page(DataTransfer.json))
      .addError(Unprocessable)
      .pipe(allow(roles, "DataTransfer attempts in creation order, filtered by bundle, package, location (either end) or status."))
  )
  .add(
    HttpApiEndpoint.get("getAttempt", "/transfers/:id")
      .setPath(Schema.Struct({ id: Ids.DataTransferId }))
      .addSuccess(DataTransfer.json)
      .addError(NotFound)
      .pipe(allow(roles, "One DataTransfer attempt."))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Bundles and transfer attempts between sites.")
{}
