/**
 * The state of the whole system at a glance, for operators (the web UI's dashboard and
 * `ccat status`): counts per entity and state, what waits at each lifecycle stage, what failed
 * and why, how full and how healthy each location is, and how fast each route moves data. Plus
 * the event-log history of one item ("what happened to this package, attempt by attempt").
 *
 * Every figure of one answer is read in one repeatable-read transaction, so the numbers agree
 * with each other (a package is never counted both waiting and archived).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { allow, Authentication } from "./ApiSecurity.js"
import { EntityKind, EventLogEntry, LoggedEntityKind } from "./EventLog.js"
import * as Ids from "./Ids.js"
import { RawDataFileState } from "./RawData.js"
import { PackageJourney, Status } from "./Status.js"
import { LocationType, PhysicalCopyStatus, StorageTechnology } from "./Storage.js"

const Count = Schema.Int.pipe(Schema.nonNegative())
const Bytes = Schema.Number.pipe(Schema.nonNegative())

/** How many rows of an entity are in each state; every state is present, zero or not. */
const countsBy = <K extends string>(states: Schema.Literal<[K, ...Array<K>]>) => Schema.Record({ key: states, value: Count })

/** Counts per entity and state. */
export const Counts = Schema.Struct({
  /** RawDataFiles by filing state (filed, packaged) and damage (corrupt, missing). */
  files: countsBy(RawDataFileState),
  /** RawDataPackages by Status. */
  packages: countsBy(Status),
  /** RawDataPackages by journey, as people read it (WAITING, TRANSFERRING, ARCHIVED, FAILED). */
  packageJourneys: countsBy(PackageJourney),
  /** DataTransferPackages (bundles) by Status. */
  bundles: countsBy(Status),
  /** DataTransfer attempts by Status. */
  transfers: countsBy(Status),
  stagingRequests: countsBy(Status),
  /** PhysicalCopies by status. */
  copies: countsBy(PhysicalCopyStatus)
}).annotations({ identifier: "StatusCounts" })
/** Counts per entity and state. */
export type Counts = typeof Counts.Type

/** Items and their bytes at one lifecycle stage. */
export const StageLoad = Schema.Struct({ count: Count, bytes: Bytes }).annotations({ identifier: "StageLoad" })
/** Items and their bytes at one lifecycle stage. */
export type StageLoad = typeof StageLoad.Type

/**
 * What waits at each lifecycle stage, in the order data flows. The definitions (documented in
 * docs/cli.md and the OpenAPI description) are those of the planners that pick the work up.
 */
export const Stages = Schema.Struct({
  /** Filed RawDataFiles not yet claimed by a package. */
  waitingToPackage: StageLoad,
  /** Packages written to a BUFFER at a site without an archive, in no open or completed bundle sent from there. */
  waitingToBundle: StageLoad,
  /** Bundles pending, scheduled or in progress (being sent, or waiting for a retry or an open circuit). */
  inTransfer: StageLoad,
  /** Packages in a BUFFER at a site with an archive, not yet completed (archived). */
  waitingToArchive: StageLoad,
  /** STAGED copies at PROCESSING locations. */
  staged: StageLoad,
  /** Copies on their way to deletion (possible, scheduled, in progress) or whose deletion failed. */
  waitingToDelete: StageLoad
}).annotations({ identifier: "StatusStages" })
/** What waits at each lifecycle stage. */
export type Stages = typeof Stages.Type

/** One item that failed, with the reason the system recorded. */
export const FailedItem = Schema.Struct({
  entity: EntityKind,
  id: Schema.UUID,
  state: Schema.String,
  /** The error the lifecycle recorded; for files and copies, from the failing event's details. */
  errorMessage: Schema.NullOr(Schema.String),
  updatedAt: Schema.DateTimeUtc
}).annotations({ identifier: "FailedItem" })
/** One item that failed. */
export type FailedItem = typeof FailedItem.Type

/**
 * Whether work may go through a route or to a location now (the transfer engine's circuit
 * breaker, derived from the DataTransfer rows): closed, half-open (one probe may go), or open
 * with the time until the next probe and why.
 */
export const Circuit = Schema.Struct({
  state: Schema.Literal("closed", "half-open", "open"),
  retryInMs: Schema.optional(Count),
  reason: Schema.optional(Schema.String)
}).annotations({ identifier: "Circuit" })
/** Whether work may go through a route or to a location now. */
export type Circuit = typeof Circuit.Type

/** The last failed transfer attempt involving a location or route. */
export const LastFailure = Schema.Struct({
  transferId: Ids.DataTransferId,
  at: Schema.DateTimeUtc,
  errorMessage: Schema.NullOr(Schema.String)
}).annotations({ identifier: "LastFailure" })

/** A location's fill and health. */
export const LocationStatus = Schema.Struct({
  id: Ids.DataLocationId,
  name: Ids.ShortName,
  siteId: Ids.SiteId,
  siteName: Schema.String,
  siteShortName: Schema.String,
  type: LocationType,
  technology: StorageTechnology,
  readable: Schema.Boolean,
  writable: Schema.Boolean,
  deletable: Schema.Boolean,
  /** PRESENT and STAGED copies: what the location holds for use. */
  presentCopies: Count,
  presentBytes: Bytes,
  /** Bytes of every copy not yet DELETED (including those awaiting deletion): what occupies space. */
  usedBytes: Bytes,
  /** Null when the location has no configured capacity. */
  capacityBytes: Schema.NullOr(Bytes),
  /** usedBytes / capacityBytes, or null without a capacity. */
  fillFraction: Schema.NullOr(Schema.Number),
  /** The breaker of transfers towards this location. */
  circuit: Circuit,
  lastFailure: Schema.NullOr(LastFailure)
}).annotations({ identifier: "LocationStatus" })
/** A location's fill and health. */
export type LocationStatus = typeof LocationStatus.Type

/** What completed transfers moved on a route over a window, and how many attempts failed. */
export const Throughput = Schema.Struct({
  /** Completed attempts that finished in the window. */
  transfers: Count,
  bytes: Bytes,
  /** Bytes over the time spent transferring: the link's speed while busy; null when nothing moved. */
  bytesPerSecond: Schema.NullOr(Schema.Number),
  /** Bytes over the whole window: the average rate, idle time included. */
  averageBytesPerSecond: Schema.Number,
  failedAttempts: Count
}).annotations({ identifier: "Throughput" })
/** What a route moved over a window. */
export type Throughput = typeof Throughput.Type

/** A route's throughput and health. */
export const RouteStatus = Schema.Struct({
  id: Ids.RouteId,
  fromSite: Schema.String,
  toSite: Schema.String,
  viaSite: Schema.NullOr(Schema.String),
  adapter: Schema.String,
  priority: Schema.Int,
  circuit: Circuit,
  lastHour: Throughput,
  last24Hours: Throughput,
  lastFailure: Schema.NullOr(LastFailure)
}).annotations({ identifier: "RouteStatus" })
/** A route's throughput and health. */
export type RouteStatus = typeof RouteStatus.Type

/**
 * The whole picture. `scope` says how much the caller may see: `full` for operators and admins;
 * `counts` for scientists and instrument accounts, who get the aggregate counts and stages (no
 * ids, no error texts, no infrastructure) with `failed`, `locations` and `routes` empty.
 */
export const SystemStatus = Schema.Struct({
  /** The instant of the snapshot (the database's clock). */
  at: Schema.DateTimeUtc,
  scope: Schema.Literal("full", "counts"),
  counts: Counts,
  stages: Stages,
  /** Failed items, newest first, at most `failedLimit`. */
  failed: Schema.Array(FailedItem),
  /** How many failed items there are in all, per entity (the list above is cut at the limit). */
  failedTotals: Schema.Record({ key: EntityKind, value: Count }),
  locations: Schema.Array(LocationStatus),
  routes: Schema.Array(RouteStatus)
}).annotations({ identifier: "SystemStatus" })
/** The whole picture. */
export type SystemStatus = typeof SystemStatus.Type

/** The most failed items one answer lists unless asked otherwise. */
export const defaultFailedLimit = 50

/** Query of the status endpoint. */
export const StatusParams = Schema.Struct({
  /** How many failed items to list, 0 to 1000 (default 50). */
  failedLimit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(0, 1000)))
})

/** Which item's history to read. */
export const EventFilter = Schema.Struct({
  /** Any kind the log records: the stateful entities, observations, accounts, tokens, sites, locations, routes. */
  entity: LoggedEntityKind,
  id: Schema.UUID,
  ...PageParams
})

/** The system's state, and the history of one item. */
export class StatusApi extends HttpApiGroup.make("status")
  .add(
    HttpApiEndpoint.get("get", "/status")
      .setUrlParams(StatusParams)
      .addSuccess(SystemStatus)
      .pipe(allow(
        ["instrument", "scientist", "operator", "admin"],
        "Counts per entity and state, what waits at each lifecycle stage, failed items with their reasons, every location's fill and health, every route's throughput over the last hour and 24 hours: one consistent snapshot. Scientists and instrument accounts get the counts and stages only (scope `counts`)."
      ))
  )
  .add(
    HttpApiEndpoint.get("events", "/events")
      .setUrlParams(EventFilter)
      .addSuccess(Page(EventLogEntry.json))
      .addError(NotFound)
      .addError(Unprocessable)
      .pipe(allow(
        ["instrument", "scientist", "operator", "admin"],
        "The event-log history of one item, oldest first: every state, access or configuration change with its actor and details (errors, attempts, reasons). Observations, files and packages of the caller's programs or instruments, a scientist's own staging requests; bundles, transfer attempts, copies, sites, locations (their availability switches), routes, accounts and tokens for operators."
      ))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The system's state at a glance, and the history of one item.")
{}
