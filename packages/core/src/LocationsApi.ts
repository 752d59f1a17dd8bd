/**
 * The storage side: sites, their data locations and the physical copies at each, and the
 * operator's switches that pause reads, writes or deletions at a location for maintenance.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { DataLocation, LocationType, PhysicalCopy, PhysicalCopyStatus, Site } from "./Storage.js"
import { strict } from "./ApiPayload.js"

/**
 * A location as the API shows it: everything but the driver configuration, which may hold
 * hostnames, buckets and credentials references that readers have no use for.
 */
export const LocationView = Schema.Struct({
  id: Ids.DataLocationId,
  siteId: Ids.SiteId,
  name: Ids.ShortName,
  type: LocationType,
  technology: DataLocation.json.fields.technology,
  priority: Schema.Int,
  readable: Schema.Boolean,
  writable: Schema.Boolean,
  deletable: Schema.Boolean,
  capacityBytes: DataLocation.json.fields.capacityBytes,
  createdAt: Schema.DateTimeUtc,
  updatedAt: Schema.DateTimeUtc
}).annotations({ identifier: "DataLocationView" })
/** A location as the API shows it. */
export type LocationView = typeof LocationView.Type

/** Which availability flags to change; absent flags stay as they are. */
export const Availability = Schema.Struct({
  readable: Schema.optional(Schema.Boolean),
  writable: Schema.optional(Schema.Boolean),
  deletable: Schema.optional(Schema.Boolean),
  /** Why (maintenance, a failing disk); recorded in the server log with the operator's name. */
  reason: Schema.optional(Schema.String.pipe(Schema.maxLength(500)))
}).annotations({ ...strict, identifier: "Availability" })

/** Filters of the location list. */
export const LocationFilter = Schema.Struct({
  siteId: Schema.optional(Ids.SiteId),
  type: Schema.optional(LocationType)
})

/** Filters of the physical-copy list. */
export const CopyFilter = Schema.Struct({
  locationId: Schema.optional(Ids.DataLocationId),
  fileId: Schema.optional(Ids.RawDataFileId),
  packageId: Schema.optional(Ids.RawDataPackageId),
  bundleId: Schema.optional(Ids.DataTransferPackageId),
  /** Copies of an observation's files, of its packages, and of the bundles holding them. */
  observationId: Schema.optional(Ids.ExecutedObsUnitId),
  status: Schema.optional(PhysicalCopyStatus),
  ...PageParams
})

const everyone = ["instrument", "scientist", "operator", "admin"] as const

/** Sites, locations, their availability, and physical copies. */
export class LocationsApi extends HttpApiGroup.make("locations")
  .add(
    HttpApiEndpoint.get("listSites", "/sites")
      .addSuccess(Schema.Array(Site.json))
      .pipe(allow(everyone, "Every site."))
  )
  .add(
    HttpApiEndpoint.get("list", "/locations")
      .setUrlParams(LocationFilter)
      .addSuccess(Schema.Array(LocationView))
      .pipe(allow(everyone, "Data locations, by site and priority, filtered by site or type."))
  )
  .add(
    HttpApiEndpoint.get("get", "/locations/:id")
      .setPath(Schema.Struct({ id: Ids.DataLocationId }))
      .addSuccess(LocationView)
      .addError(NotFound)
      .pipe(allow(everyone, "One data location."))
  )
  .add(
    HttpApiEndpoint.patch("setAvailability", "/locations/:id/availability")
      .setPath(Schema.Struct({ id: Ids.DataLocationId }))
      .setPayload(Availability)
      .addSuccess(LocationView)
      .addError(NotFound)
      .addError(Unprocessable)
      .pipe(allow(["operator", "admin"], "Pause or resume reads, writes or deletions at a location."))
  )
  .add(
    HttpApiEndpoint.get("listCopies", "/copies")
      .setUrlParams(CopyFilter)
      .addSuccess(Page(PhysicalCopy.json))
      .addError(Unprocessable)
      .pipe(
        allow(
          ["operator", "admin"],
          "PhysicalCopies in creation order, filtered by location, file, package, bundle, observation or status."
        )
      )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Sites, data locations, availability and physical copies.")
{}
