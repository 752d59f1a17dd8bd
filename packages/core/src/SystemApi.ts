/**
 * The system endpoints of the API: liveness and readiness for load balancers and operators,
 * with the database the server is connected to and the topology it runs.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { AdapterName, LocationType, StorageTechnology } from "./Topology.js"

/** The database as the health endpoint reports it: where, and whether it answered. */
export class DatabaseHealth extends Schema.Class<DatabaseHealth>("DatabaseHealth")({
  kind: Schema.Literal("embedded", "external"),
  /** host:port/database, never credentials. */
  target: Schema.String,
  reachable: Schema.Boolean,
  latencyMs: Schema.optional(Schema.Number),
  /** The server's PostgreSQL version, as it reports it. */
  version: Schema.optional(Schema.String),
  /** Migrations applied, newest last. */
  migrations: Schema.Array(Schema.String),
  error: Schema.optional(Schema.String)
}) {}

/** A location as the health endpoint reports it. */
export class LocationSummary extends Schema.Class<LocationSummary>("LocationSummary")({
  name: Schema.String,
  type: LocationType,
  technology: StorageTechnology,
  priority: Schema.Int,
  read: Schema.Boolean,
  write: Schema.Boolean,
  delete: Schema.Boolean
}) {}

/** A site and its locations. */
export class SiteSummary extends Schema.Class<SiteSummary>("SiteSummary")({
  name: Schema.String,
  shortName: Schema.String,
  role: Schema.Literal("main", "secondary"),
  locations: Schema.Array(LocationSummary)
}) {}

/** A route between sites. */
export class RouteSummary extends Schema.Class<RouteSummary>("RouteSummary")({
  from: Schema.String,
  to: Schema.String,
  via: Schema.Array(Schema.String),
  adapter: AdapterName
}) {}

/**
 * The answer of the health endpoint. The database and the topology tell an attacker where to go
 * next, so they are given only to a caller whose bearer token is an operator's or an admin's;
 * anyone else (a load balancer, a dashboard tile) gets the status, version and start time.
 */
export class Health extends Schema.Class<Health>("Health")({
  status: Schema.Literal("ok", "degraded"),
  version: Schema.String,
  startedAt: Schema.DateTimeUtc,
  database: Schema.optional(DatabaseHealth),
  topology: Schema.optional(Schema.Struct({ sites: Schema.Array(SiteSummary), routes: Schema.Array(RouteSummary) }))
}) {}

/** The server is up but cannot serve (its database is unreachable). */
export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  { reason: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {
  override get message(): string {
    return `not ready: ${this.reason}`
  }
}

/** Liveness, health (database and topology for operators) and readiness. */
export class SystemApi extends HttpApiGroup.make("system")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Health))
  .add(HttpApiEndpoint.get("ready", "/ready").addSuccess(Schema.Struct({ ready: Schema.Literal(true) })).addError(NotReady))
{}
