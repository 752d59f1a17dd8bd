/**
 * The storage hierarchy of the ops-db (DESIGN §3): Site → DataLocation → PhysicalCopy, the
 * Routes between sites, and the RetentionPolicy that says when a copy may be cleaned up.
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { Checksum } from "./Checksum.js"
import { ByteSize, DisplayName, GeneratedTimestamp, JsonObject, TimestampOrNull } from "./Fields.js"
import * as Ids from "./Ids.js"
import { RelativePath } from "./RelativePath.js"

/** Whether a site is the main data center or a secondary one. */
export const SiteRole = Schema.Literal("main", "secondary")
/** Whether a site is the main data center or a secondary one. */
export type SiteRole = typeof SiteRole.Type

/** The role of a location in the data's life (seed: "Location Types"). */
export const LocationType = Schema.Literal("SOURCE", "BUFFER", "LONG_TERM_ARCHIVE", "PROCESSING")
/** The role of a location in the data's life. */
export type LocationType = typeof LocationType.Type

/**
 * The storage technology behind a location: the name of the registered StorageDriver that serves
 * it (`disk`, `s3`, `tape`, or an integrator's), as a configuration names it.
 */
export const StorageTechnology = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9-]{0,62}$/),
  Schema.annotations({ identifier: "StorageTechnology" })
)
/** The storage technology behind a location. */
export type StorageTechnology = typeof StorageTechnology.Type

/**
 * The status of a PhysicalCopy, as in the CCAT ops-db, plus CORRUPT (its bytes were found to
 * differ from its checksum, or to have changed since they were recorded) and MISSING (the object
 * is gone): such a copy no longer counts as a good copy anywhere.
 */
export const PhysicalCopyStatus = Schema.Literal(
  "PRESENT",
  "STAGED",
  "DELETION_SCHEDULED",
  "DELETION_IN_PROGRESS",
  "DELETION_POSSIBLE",
  "DELETED",
  "DELETION_FAILED",
  "CORRUPT",
  "MISSING"
)
/** The status of a PhysicalCopy. */
export type PhysicalCopyStatus = typeof PhysicalCopyStatus.Type

/** A physical place with data-center infrastructure (Chile, Cologne). */
export class Site extends Model.Class<Site>("Site")({
  id: Model.Generated(Ids.SiteId),
  name: DisplayName,
  shortName: Ids.ShortName,
  role: SiteRole,
  createdAt: GeneratedTimestamp
}) {}

/**
 * A storage system at a site ("chile-buffer-01"). Lower priority numbers are used first; the
 * three availability flags let an operator pause reads, writes or deletions for maintenance.
 */
export class DataLocation extends Model.Class<DataLocation>("DataLocation")({
  id: Model.Generated(Ids.DataLocationId),
  siteId: Ids.SiteId,
  name: Ids.ShortName,
  type: LocationType,
  technology: StorageTechnology,
  driverConfig: JsonObject,
  priority: Schema.Int,
  readable: Schema.Boolean,
  writable: Schema.Boolean,
  deletable: Schema.Boolean,
  capacityBytes: Schema.NullOr(ByteSize),
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/**
 * That one file, package or bundle exists at one location, under a path (or key) relative to the
 * location's root. Exactly one of the three subject ids is set; one live copy per location.
 */
export class PhysicalCopy extends Model.Class<PhysicalCopy>("PhysicalCopy")({
  id: Model.Generated(Ids.PhysicalCopyId),
  rawDataFileId: Schema.NullOr(Ids.RawDataFileId),
  rawDataPackageId: Schema.NullOr(Ids.RawDataPackageId),
  dataTransferPackageId: Schema.NullOr(Ids.DataTransferPackageId),
  dataLocationId: Ids.DataLocationId,
  path: RelativePath,
  sizeBytes: ByteSize,
  checksum: Checksum,
  status: PhysicalCopyStatus,
  verifiedAt: TimestampOrNull,
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/**
 * How data moves from one site to another: directly, or relayed through a third site
 * (Chile → Cologne → Cornell), with a transfer adapter and its options. Lower priority first.
 */
export class Route extends Model.Class<Route>("Route")({
  id: Model.Generated(Ids.RouteId),
  fromSiteId: Ids.SiteId,
  toSiteId: Ids.SiteId,
  viaSiteId: Schema.NullOr(Ids.SiteId),
  adapter: DisplayName,
  options: JsonObject,
  priority: Schema.Int,
  createdAt: GeneratedTimestamp
}) {
  /** Whether the route relays through another site. */
  get isRelay(): boolean {
    return this.viaSiteId !== null
  }
}

/**
 * When copies at a location may be cleaned up: not before `minAgeSeconds` after they were
 * archived, only with `requiredArchiveCopies` verified LONG_TERM_ARCHIVE copies, and (when set)
 * only once the location is fuller than `diskUsageThreshold` (a fraction of its capacity).
 */
export class RetentionPolicy extends Model.Class<RetentionPolicy>("RetentionPolicy")({
  id: Model.Generated(Ids.RetentionPolicyId),
  dataLocationId: Ids.DataLocationId,
  minAgeSeconds: Schema.NonNegativeInt,
  diskUsageThreshold: Schema.NullOr(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))),
  requiredArchiveCopies: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}
