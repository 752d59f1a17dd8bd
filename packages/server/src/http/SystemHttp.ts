/**
 * Health and readiness: what an operator or a load balancer asks first. Health reports whether
 * the database answers to anyone, and where it is, its version and the topology to operators and
 * admins only (a bearer token is checked when one is sent; a missing or bad one gets the summary,
 * never an error, so load balancers keep working); readiness fails with 503 while the database
 * does not answer, naming no host.
 */
import { Api, SystemApi } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { authenticate } from "../auth/Authentication.js"
import { ServerConfig } from "../ServerConfig.js"
import { version } from "../Version.js"

const probe = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const info = yield* OpsDb.OpsDb
  const start = Date.now()
  const result = yield* Effect.all({
    version: sql<{ version: string }>`select current_setting('server_version') as version`,
    migrations: sql<{ name: string }>`select name from ccat_migrations order by migration_id`
  }).pipe(Effect.timeout(Duration.seconds(5)), Effect.either)
  if (result._tag === "Left") {
    return new SystemApi.DatabaseHealth({
      kind: info.kind,
      target: info.target,
      reachable: false,
      migrations: [],
      error: String(result.left)
    })
  }
  return new SystemApi.DatabaseHealth({
    kind: info.kind,
    target: info.target,
    reachable: true,
    latencyMs: Date.now() - start,
    version: result.right.version[0]?.version,
    migrations: result.right.migrations.map((m) => m.name)
  })
})

/** Whether the request carries the token of an operator or an admin; any failure means no. */
const callerIsOperator = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const header = request.headers["authorization"]
  if (header === undefined || !/^bearer /i.test(header)) return false
  const principal = yield* authenticate(header.slice(7).trim())
  return principal.role === "operator" || principal.role === "admin"
}).pipe(Effect.orElseSucceed(() => false))

/** The system group's handlers. */
export const SystemHttpLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* ServerConfig
    const startedAt = yield* DateTime.now
    const topology = {
      sites: config.topology.sites.map(
        (s) =>
          new SystemApi.SiteSummary({
            name: s.name,
            shortName: s.shortName,
            role: s.role,
            locations: s.locations.map(
              (l) =>
                new SystemApi.LocationSummary({
                  name: l.name,
                  type: l.type,
                  technology: l.technology,
                  priority: l.priority,
                  read: l.availability.read,
                  write: l.availability.write,
                  delete: l.availability.delete
                })
            )
          })
      ),
      routes: config.topology.routes.map((r) => new SystemApi.RouteSummary({ from: r.from, to: r.to, via: r.via, adapter: r.adapter }))
    }
    return HttpApiBuilder.group(Api.Api, "system", (handlers) =>
      handlers
        .handle("health", () =>
          Effect.gen(function* () {
            const database = yield* probe
            const status = database.reachable ? "ok" as const : "degraded" as const
            return (yield* callerIsOperator)
              ? new SystemApi.Health({ status, version, startedAt, database, topology })
              : new SystemApi.Health({ status, version, startedAt })
          }))
        .handle("ready", () =>
          Effect.flatMap(probe, (database) =>
            database.reachable
              ? Effect.succeed({ ready: true as const })
              : Effect.logWarning("not ready: the ops-db does not answer").pipe(
                Effect.annotateLogs({ database: database.target, error: database.error }),
                Effect.zipRight(
                  Effect.fail(
                    new SystemApi.NotReady({
                      reason: "the ops-db does not answer; GET /api/v1/health with an operator's token tells which and why"
                    })
                  )
                )
              ))))
  })
)
