/**
 * Branded identifiers of every ops-db entity. A RawDataPackage id and a RawDataFile id are both
 * UUIDs; the brand makes the compiler refuse one where the other is meant (STYLE §4).
 */
import * as Schema from "effect/Schema"

/** Identifies an Observatory. */
export const ObservatoryId = Schema.UUID.pipe(Schema.brand("ObservatoryId"))
/** Identifies an Observatory. */
export type ObservatoryId = typeof ObservatoryId.Type

/** Identifies a Telescope. */
export const TelescopeId = Schema.UUID.pipe(Schema.brand("TelescopeId"))
/** Identifies a Telescope. */
export type TelescopeId = typeof TelescopeId.Type

/** Identifies an Instrument. */
export const InstrumentId = Schema.UUID.pipe(Schema.brand("InstrumentId"))
/** Identifies an Instrument. */
export type InstrumentId = typeof InstrumentId.Type

/** Identifies an InstrumentModule. */
export const InstrumentModuleId = Schema.UUID.pipe(Schema.brand("InstrumentModuleId"))
/** Identifies an InstrumentModule. */
export type InstrumentModuleId = typeof InstrumentModuleId.Type

/** Identifies an ObservingProgram. */
export const ObservingProgramId = Schema.UUID.pipe(Schema.brand("ObservingProgramId"))
/** Identifies an ObservingProgram. */
export type ObservingProgramId = typeof ObservingProgramId.Type

/** Identifies an ObsUnit (a planned observation). */
export const ObsUnitId = Schema.UUID.pipe(Schema.brand("ObsUnitId"))
/** Identifies an ObsUnit. */
export type ObsUnitId = typeof ObsUnitId.Type

/** Identifies a SubObservingProgram (a part of an ObservingProgram). */
export const SubObservingProgramId = Schema.UUID.pipe(Schema.brand("SubObservingProgramId"))
/** Identifies a SubObservingProgram. */
export type SubObservingProgramId = typeof SubObservingProgramId.Type

/** Identifies a Source: an astronomical target with ICRS coordinates, or a solar-system body. */
export const SourceId = Schema.UUID.pipe(Schema.brand("SourceId"))
/** Identifies a Source. */
export type SourceId = typeof SourceId.Type

/** Identifies an ObservingMode (how the telescope observes: raster, on-the-fly, pointing). */
export const ObservingModeId = Schema.UUID.pipe(Schema.brand("ObservingModeId"))
/** Identifies an ObservingMode. */
export type ObservingModeId = typeof ObservingModeId.Type

/** Identifies an ExecutedObsUnit; made by the instrument, so re-filing it is idempotent. */
export const ExecutedObsUnitId = Schema.UUID.pipe(Schema.brand("ExecutedObsUnitId"))
/** Identifies an ExecutedObsUnit. */
export type ExecutedObsUnitId = typeof ExecutedObsUnitId.Type

/** Identifies a RawDataFile; made by the instrument, so re-filing a file is idempotent. */
export const RawDataFileId = Schema.UUID.pipe(Schema.brand("RawDataFileId"))
/** Identifies a RawDataFile. */
export type RawDataFileId = typeof RawDataFileId.Type

/** Identifies a RawDataPackage. */
export const RawDataPackageId = Schema.UUID.pipe(Schema.brand("RawDataPackageId"))
/** Identifies a RawDataPackage. */
export type RawDataPackageId = typeof RawDataPackageId.Type

/** Identifies a DataTransferPackage. */
export const DataTransferPackageId = Schema.UUID.pipe(Schema.brand("DataTransferPackageId"))
/** Identifies a DataTransferPackage. */
export type DataTransferPackageId = typeof DataTransferPackageId.Type

/** Identifies one DataTransfer attempt. */
export const DataTransferId = Schema.UUID.pipe(Schema.brand("DataTransferId"))
/** Identifies one DataTransfer attempt. */
export type DataTransferId = typeof DataTransferId.Type

/** Identifies a Site. */
export const SiteId = Schema.UUID.pipe(Schema.brand("SiteId"))
/** Identifies a Site. */
export type SiteId = typeof SiteId.Type

/** Identifies a DataLocation. */
export const DataLocationId = Schema.UUID.pipe(Schema.brand("DataLocationId"))
/** Identifies a DataLocation. */
export type DataLocationId = typeof DataLocationId.Type

/** Identifies a PhysicalCopy. */
export const PhysicalCopyId = Schema.UUID.pipe(Schema.brand("PhysicalCopyId"))
/** Identifies a PhysicalCopy. */
export type PhysicalCopyId = typeof PhysicalCopyId.Type

/** Identifies a Route. */
export const RouteId = Schema.UUID.pipe(Schema.brand("RouteId"))
/** Identifies a Route. */
export type RouteId = typeof RouteId.Type

/** Identifies a RetentionPolicy. */
export const RetentionPolicyId = Schema.UUID.pipe(Schema.brand("RetentionPolicyId"))
/** Identifies a RetentionPolicy. */
export type RetentionPolicyId = typeof RetentionPolicyId.Type

/** Identifies a StagingRequest. */
export const StagingRequestId = Schema.UUID.pipe(Schema.brand("StagingRequestId"))
/** Identifies a StagingRequest. */
export type StagingRequestId = typeof StagingRequestId.Type

/** Identifies one item (a package or an observation) of a StagingRequest. */
export const StagingRequestItemId = Schema.UUID.pipe(Schema.brand("StagingRequestItemId"))
/** Identifies one item of a StagingRequest. */
export type StagingRequestItemId = typeof StagingRequestItemId.Type

/** Identifies an Account. */
export const AccountId = Schema.UUID.pipe(Schema.brand("AccountId"))
/** Identifies an Account. */
export type AccountId = typeof AccountId.Type

/** Identifies an ApiToken. */
export const ApiTokenId = Schema.UUID.pipe(Schema.brand("ApiTokenId"))
/** Identifies an ApiToken. */
export type ApiTokenId = typeof ApiTokenId.Type

/** Identifies an event-log entry; a sequence, so ids also order the log. */
export const EventId = Schema.Int.pipe(Schema.positive(), Schema.brand("EventId"))
/** Identifies an event-log entry. */
export type EventId = typeof EventId.Type

/** Why a short name is unsafe, or undefined when it is safe. */
export const shortNameProblem = (value: string): string | undefined =>
  /^[a-z][a-z0-9-]{0,62}$/.test(value)
    ? undefined
    : "a short name must be 1 to 63 characters of a-z, 0-9 and -, starting with a letter"

/**
 * A safe slug (`chile`, `cologne-archive`): it names sites and locations in queue names
 * (`chile.package`), configuration keys, paths and URLs, so it must be safe in all of them.
 */
export const ShortName = Schema.String.pipe(
  Schema.filter((s) => shortNameProblem(s) ?? true, { identifier: "ShortName" }),
  Schema.brand("ShortName")
)
/** A validated short name. */
export type ShortName = typeof ShortName.Type
