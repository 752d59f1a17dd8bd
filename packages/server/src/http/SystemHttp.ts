/**
 * Health and readiness: what an operator or a load balancer asks first. Health reports the
 * database (embedded or external, reachable or not) and the topology; readiness fails with 503
 * while the database does not answer.
 */
import { Api, SystemApi } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
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
          Effect.map(probe, (database) =>
            new SystemApi.Health({ status: database.reachable ? "ok" : "degraded", version, startedAt, database, topology })
          )
        )
        .handle("ready", () =>
          Effect.flatMap(probe, (database) =>
            database.reachable
              ? Effect.succeed({ ready: true as const })
              : Effect.fail(new SystemApi.NotReady({ reason: `database ${database.target} unreachable: ${database.error}` }))
          )
        )
    )
  })
)
