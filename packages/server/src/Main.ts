/**
 * How the server's pieces are put together for each command: the configuration, the ops-db
 * (embedded or external, migrated), and the HTTP server.
 */
import { Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpServerLive from "./HttpServer.js"
import * as TopologySync from "./TopologySync.js"
import { load, ServerConfig, type LoadOptions, type ServerConfigShape } from "./ServerConfig.js"
import { version } from "./Version.js"

/** The configuration as a layer. */
export const configLayer = (options: LoadOptions) => Layer.effect(ServerConfig, load(options))

/** The ops-db for a configuration: `DATABASE_URL` or the embedded PostgreSQL under the data folder. */
export const opsDbLayer = (config: ServerConfigShape, migrate = true) =>
  OpsDb.layer({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, migrate })

/** Writes the configured topology into the ops-db and says what it found. */
const syncTopology = Effect.gen(function* () {
  const config = yield* ServerConfig
  const report = yield* TopologySync.sync(config.topology)
  if (report.unconfiguredLocations.length > 0) {
    yield* Effect.logWarning(
      `locations in the ops-db that the configuration no longer names (kept, they may hold copies): ${report.unconfiguredLocations.join(", ")}`
    )
  }
})

/** Says where the server listens once it does. */
const announce = Effect.gen(function* () {
  const config = yield* ServerConfig
  const db = yield* OpsDb.OpsDb
  const address = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
  yield* Effect.logInfo(
    `CCAT Data Center server ${version} listening on ${address}; database: ${db.kind} ${db.target}; ` +
      `data: ${config.dataDir}; sites: ${config.topology.sites.map((s) => s.name).join(", ")}`
  )
})

/** The whole reference server: runs until interrupted (Ctrl-C, SIGTERM), then stops cleanly. */
export const serve = (options: LoadOptions) =>
  Effect.gen(function* () {
    const config = yield* load(options)
    const app = Layer.mergeAll(Layer.effectDiscard(announce), HttpServerLive.layer).pipe(
      Layer.provideMerge(HttpServerLive.listen),
      Layer.provideMerge(Layer.effectDiscard(syncTopology)),
      Layer.provideMerge(opsDbLayer(config)),
      Layer.provideMerge(Layer.succeed(ServerConfig, config))
    )
    return yield* Layer.launch(app)
  })

/** Applies pending migrations; returns the ones it applied, as `[id, name]`. */
export const migrate = (options: LoadOptions) =>
  Effect.gen(function* () {
    const config = yield* load(options)
    return yield* Migrations.run.pipe(Effect.provide(opsDbLayer(config, false)))
  })
