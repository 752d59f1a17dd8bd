/**
 * Staging: a scientist's request to have archived data made available at a PROCESSING location
 * until it is released (processing is done) or its expiry passes, after which the staged copies
 * no other live request needs are cleaned up.
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { GeneratedTimestamp, TimestampOrNull, Workflow, WorkflowTimestamp } from "./Fields.js"
import * as Ids from "./Ids.js"
import { Status } from "./Status.js"

/**
 * A request to stage data at a PROCESSING location (the database refuses any other location
 * type). What it asks for is its StagingRequestItems.
 */
export class StagingRequest extends Model.Class<StagingRequest>("StagingRequest")({
  id: Model.Generated(Ids.StagingRequestId),
  accountId: Ids.AccountId,
  dataLocationId: Ids.DataLocationId,
  status: Workflow(Status),
  expiresAt: TimestampOrNull,
  errorMessage: Workflow(Schema.NullOr(Schema.String)),
  /** When the request was released: from then on it keeps no staged copy, whatever its expiry. */
  releasedAt: WorkflowTimestamp,
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}

/** One thing a staging request asks for: a RawDataPackage or a whole ExecutedObsUnit. */
export class StagingRequestItem extends Model.Class<StagingRequestItem>("StagingRequestItem")({
  id: Model.Generated(Ids.StagingRequestItemId),
  stagingRequestId: Ids.StagingRequestId,
  rawDataPackageId: Schema.NullOr(Ids.RawDataPackageId),
  executedObsUnitId: Schema.NullOr(Ids.ExecutedObsUnitId)
}) {}
