/**
 * Integrity at rest, for operators (the web UI's Integrity page, `ccat integrity`,
 * docs/integrity.md): per DataLocation how many copies it holds and how many were audited
 * within the audit cycle, when it was last audited and how far behind the audits are, how many
 * copies were found CORRUPT or MISSING, how many objects no copy accounts for (dark) and how
 * many bad copies were repaired; and the archived RawDataPackages that have fewer good archive
 * copies than the policy requires.
 *
 * Definitions (every answer is one read-only repeatable-read snapshot, `now` its instant):
 * - copies: copies at the location not DELETED; audited: of those, verified at or after
 *   `now - auditCycleDays`; lastAuditAt: their latest verifiedAt;
 * - auditLagSeconds: `now` minus the oldest verifiedAt of the PRESENT and STAGED copies;
 *   unverifiedCopies: PRESENT and STAGED copies never verified (their lag is "never");
 * - corrupt / missing: copies in status CORRUPT / MISSING; dark: objects found in the
 *   location's storage that no copy accounts for, not yet resolved; repaired: bad copies of the
 *   location that repair replaced (their move to DELETED with action `repaired`);
 *   lastInventoryAt: when the location's last inventory pass finished;
 * - a good archive copy: PRESENT, verified, with the package's checksum, at a LONG_TERM_ARCHIVE
 *   location; a package is below target when it is ARCHIVED (completed) with fewer good archive
 *   copies than `policy.archiveCopies`.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { LocationType, PhysicalCopyStatus, StorageTechnology } from "./Storage.js"

const Count = Schema.Int.pipe(Schema.nonNegative())

/** One location's integrity figures (definitions in the module's description). */
export const LocationIntegrity = Schema.Struct({
  id: Ids.DataLocationId,
  name: Ids.ShortName,
  siteName: Schema.String,
  siteShortName: Schema.String,
  type: LocationType,
  technology: StorageTechnology,
  /** This location's audit cycle in days (`policy.audit.cycleDays`, `tapeCycleDays` for tape). */
  auditCycleDays: Schema.Number,
  /** Copies not DELETED. */
  copies: Count,
  /** Of those, verified within the audit cycle. */
  audited: Count,
  /** The latest verifiedAt of the location's copies; null when none was ever verified. */
  lastAuditAt: Schema.NullOr(Schema.DateTimeUtc),
  /** Seconds since the oldest verifiedAt of the PRESENT and STAGED copies; null when none is verified. */
  auditLagSeconds: Schema.NullOr(Schema.Number),
  /** PRESENT and STAGED copies never verified: their audit lag is "never". */
  unverifiedCopies: Count,
  corrupt: Count,
  missing: Count,
  /** Unresolved dark objects: in storage, accounted for by no copy. */
  dark: Count,
  /** Bad copies of this location that repair replaced. */
  repaired: Count,
  /** When the location's last inventory pass finished; null when none has. */
  lastInventoryAt: Schema.NullOr(Schema.DateTimeUtc)
}).annotations({ identifier: "LocationIntegrity" })
/** One location's integrity figures. */
export type LocationIntegrity = typeof LocationIntegrity.Type

/** A live archive copy of a package that does not count as good, and why (its status). */
export const BadArchiveCopy = Schema.Struct({
  copyId: Ids.PhysicalCopyId,
  location: Ids.ShortName,
  status: PhysicalCopyStatus,
  /** A PRESENT copy that is not good was never verified, or holds other bytes than the package's. */
  verified: Schema.Boolean,
  checksumMatches: Schema.Boolean
}).annotations({ identifier: "BadArchiveCopy" })
/** A live archive copy of a package that does not count as good. */
export type BadArchiveCopy = typeof BadArchiveCopy.Type

/** An archived package with fewer good archive copies than the policy requires. */
export const PackageBelowTarget = Schema.Struct({
  id: Ids.RawDataPackageId,
  goodCopies: Count,
  target: Count,
  badCopies: Schema.Array(BadArchiveCopy)
}).annotations({ identifier: "PackageBelowTarget" })
/** An archived package with fewer good archive copies than the policy requires. */
export type PackageBelowTarget = typeof PackageBelowTarget.Type

/** Sums over every location: what a caller who sees no infrastructure is shown. */
export const IntegrityTotals = Schema.Struct({
  copies: Count,
  audited: Count,
  unverifiedCopies: Count,
  corrupt: Count,
  missing: Count,
  dark: Count,
  repaired: Count,
  packagesBelowTarget: Count
}).annotations({ identifier: "IntegrityTotals" })
/** Sums over every location. */
export type IntegrityTotals = typeof IntegrityTotals.Type

/**
 * The whole integrity picture. `scope` says how much the caller may see, as for the status:
 * `full` for operators and admins; `totals` for scientists and instrument accounts, with
 * `locations` and `packagesBelowTarget.items` empty.
 */
export const IntegrityReport = Schema.Struct({
  /** The instant of the snapshot (the database's clock). */
  at: Schema.DateTimeUtc,
  scope: Schema.Literal("full", "totals"),
  /** Every copy should be re-verified within this many days (`policy.audit.cycleDays`; tape may differ, see each location). */
  auditCycleDays: Schema.Number,
  /** Good archive copies each archived package must have (`policy.archiveCopies`). */
  copyTarget: Count,
  totals: IntegrityTotals,
  locations: Schema.Array(LocationIntegrity),
  packagesBelowTarget: Schema.Struct({
    /** All archived packages below target. */
    total: Count,
    /** The first `belowTargetLimit` of them, by id. */
    items: Schema.Array(PackageBelowTarget)
  })
}).annotations({ identifier: "IntegrityReport" })
/** The whole integrity picture. */
export type IntegrityReport = typeof IntegrityReport.Type

/** The most packages below target one answer lists unless asked otherwise. */
export const defaultBelowTargetLimit = 50

/** Query of the integrity endpoint. */
export const IntegrityParams = Schema.Struct({
  /** How many packages below target to list, 0 to 1000 (default 50); the total counts them all. */
  belowTargetLimit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 1000)))
})

/** Integrity at rest: audits, findings, dark data, repairs, packages below their copy target. */
export class IntegrityApi extends HttpApiGroup.make("integrity")
  .add(
    HttpApiEndpoint.get("get", "/integrity")
      .setUrlParams(IntegrityParams)
      .addSuccess(IntegrityReport)
      .pipe(allow(
        ["instrument", "scientist", "operator", "admin"],
        "Per location: copies, copies audited within the audit cycle, last audit, audit lag (seconds since the oldest verification of a PRESENT or STAGED copy; copies never verified are counted apart), CORRUPT and MISSING copies, unresolved dark objects, repaired copies, last inventory pass. Plus the archived packages with fewer good archive copies (PRESENT, verified, matching checksum, at a LONG_TERM_ARCHIVE location) than `policy.archiveCopies`: a total and the first `belowTargetLimit` by id, with their bad copies. One consistent snapshot. Scientists and instrument accounts get the totals only (scope `totals`)."
      ))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Integrity at rest: audits, corrupt, missing and dark data, repairs, packages below their copy target.")
{}
