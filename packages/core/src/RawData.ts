/**
 * The data hierarchy of the ops-db (DESIGN §3): RawDataFile → RawDataPackage →
 * DataTransferPackage, and DataTransfer, one row per attempt to move a package or a bundle.
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { Checksum } from "./Checksum.js"
import { ByteSize, DisplayName, GeneratedTimestamp, Workflow, WorkflowTimestamp } from "./Fields.js"
import * as Ids from "./Ids.js"
import { RelativePath } from "./RelativePath.js"
import { Status } from "./Status.js"

/**
 * Where a filed file stands: filed (waiting to be packaged), packaged, or marked corrupt or
 * missing when a scan finds it damaged or gone at its SOURCE location.
 */
export const RawDataFileState = Schema.Literal("filed", "packaged", "corrupt", "missing")
/** Where a filed file stands. */
export type RawDataFileState = typeof RawDataFileState.Type

/**
 * A file an instrument wrote at a SOURCE location and filed. Its id is the instrument's UUID and
 * (executedObsUnitId, relativePath) is unique, so filing it twice stores it once.
 */
export class RawDataFile extends Model.Class<RawDataFile>("RawDataFile")({
  id: Ids.RawDataFileId,
  executedObsUnitId: Ids.ExecutedObsUnitId,
  instrumentModuleId: Ids.InstrumentModuleId,
  relativePath: RelativePath,
  sizeBytes: ByteSize,
  checksum: Checksum,
  sourceLocationId: Ids.DataLocationId,
  rawDataPackageId: Workflow(Schema.NullOr(Ids.RawDataPackageId)),
  state: Workflow(RawDataFileState),
  filedAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/**
 * A tar archive of the files of one ExecutedObsUnit and one InstrumentModule. Its status is its
 * journey to the archive (see `Status.journey`); size and checksum are known once it is written.
 */
export class RawDataPackage extends Model.Class<RawDataPackage>("RawDataPackage")({
  id: Model.Generated(Ids.RawDataPackageId),
  executedObsUnitId: Ids.ExecutedObsUnitId,
  instrumentModuleId: Ids.InstrumentModuleId,
  relativePath: RelativePath,
  sizeBytes: Schema.NullOr(ByteSize),
  checksum: Schema.NullOr(Checksum),
  status: Workflow(Status),
  errorMessage: Workflow(Schema.NullOr(Schema.String)),
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/** A bundle of RawDataPackages moved between site buffers as one unit. */
export class DataTransferPackage extends Model.Class<DataTransferPackage>("DataTransferPackage")({
  id: Model.Generated(Ids.DataTransferPackageId),
  relativePath: RelativePath,
  sizeBytes: Schema.NullOr(ByteSize),
  checksum: Schema.NullOr(Checksum),
  status: Workflow(Status),
  errorMessage: Workflow(Schema.NullOr(Schema.String)),
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/** Membership of a RawDataPackage in a DataTransferPackage (a package may be re-bundled at a relay). */
export class DataTransferPackageMember extends Model.Class<DataTransferPackageMember>("DataTransferPackageMember")({
  dataTransferPackageId: Ids.DataTransferPackageId,
  rawDataPackageId: Ids.RawDataPackageId
}) {}

/**
 * One attempt to move a DataTransferPackage or a RawDataPackage from one location to another. A
 * retry is a new row pointing at the attempt before it, so the history of every move stays.
 */
export class DataTransfer extends Model.Class<DataTransfer>("DataTransfer")({
  id: Model.Generated(Ids.DataTransferId),
  dataTransferPackageId: Schema.NullOr(Ids.DataTransferPackageId),
  rawDataPackageId: Schema.NullOr(Ids.RawDataPackageId),
  routeId: Schema.NullOr(Ids.RouteId),
  fromLocationId: Ids.DataLocationId,
  toLocationId: Ids.DataLocationId,
  previousAttemptId: Schema.NullOr(Ids.DataTransferId),
  attempt: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  adapter: DisplayName,
  status: Workflow(Status),
  bytesTransferred: Workflow(ByteSize),
  durationMs: Workflow(Schema.NullOr(Schema.NonNegativeInt)),
  throughputBytesPerSecond: Workflow(Schema.NullOr(Schema.NonNegative)),
  errorReason: Workflow(Schema.NullOr(Schema.String)),
  errorMessage: Workflow(Schema.NullOr(Schema.String)),
  retryable: Workflow(Schema.NullOr(Schema.Boolean)),
  startedAt: WorkflowTimestamp,
  finishedAt: WorkflowTimestamp,
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}
