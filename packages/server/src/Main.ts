/**
 * How the server's pieces are put together for each command: the configuration, the ops-db
 * (embedded or external, migrated), the HTTP server, and the lifecycle workers.
 */
import { Backoff } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Notifier from "./alerts/Notifier.js"
import type { ServeOptions, ServeWorkers } from "./Assembly.js"
import * as HttpServerLive from "./HttpServer.js"
import * as JobQueue from "./engine/JobQueue.js"
import * as Audit from "./lifecycle/Audit.js"
import * as Engine from "./lifecycle/Engine.js"
import { LifecyclePolicy } from "./lifecycle/Packaging.js"
import * as Stages from "./lifecycle/Stages.js"
import * as Storages from "./lifecycle/Storages.js"
import * as Plugins from "./Plugins.js"
import * as InfluxPush from "./observability/InfluxPush.js"
import * as Logging from "./observability/Logging.js"
import * as Metrics from "./observability/Metrics.js"
import * as TopologySync from "./TopologySync.js"
import { load, ServerConfig, type LoadOptions, type ServerConfigShape } from "./ServerConfig.js"
import * as ContractGuard from "./upgrade/ContractGuard.js"
import { version } from "./Version.js"

/** The configuration as a layer. */
export const configLayer = (options: LoadOptions) => Layer.effect(ServerConfig, load(options))

/**
 * The ops-db for a configuration: `DATABASE_URL` or the embedded PostgreSQL under the data folder.
 * Migrated at start, but never by a contract step: those wait for `ccat migrate
 * --previous-release-stopped`, and the start fails saying so (ContractGuard).
 */
export const opsDbLayer = (config: ServerConfigShape, migrate = true) => {
  const db = OpsDb.layer({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, migrate: false })
  return migrate
    ? Layer.tap(
      db,
      (ctx: Context.Context<SqlClient.SqlClient>) =>
        ContractGuard.migrate({ caller: "start", previousReleaseStopped: false }).pipe(Effect.provide(ctx))
    )
    : db
}

/** PostgreSQL aborted the transaction to break a deadlock or a serialization conflict: trying again is the remedy. */
const transientSql = (e: SqlError.SqlError) => {
  const code = (e.cause as { code?: string } | undefined)?.code
  return code === "40P01" || code === "40001"
}

/**
 * Writes the configured topology into the ops-db and says what it found. Processes starting
 * while others work may be chosen by PostgreSQL to break a deadlock; the sync is tried again
 * rather than the process dying at start.
 */
const syncTopology = Effect.gen(function* () {
  const config = yield* ServerConfig
  const report = yield* TopologySync.sync(config.topology).pipe(
    Effect.retry({ while: transientSql, schedule: Backoff.schedule({ base: "100 millis", jitter: Backoff.around, times: 8 }) })
  )
  if (report.unconfiguredLocations.length > 0) {
    yield* Effect.logWarning(
      `locations in the ops-db that the configuration no longer names (kept, they may hold copies): ${
        report.unconfiguredLocations.join(", ")
      }`
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

/**
 * The services the lifecycle stages run on: the job engine, the storages and transfer adapters
 * (built by the registries' drivers and adapters, default the built-in ones), the policy.
 */
export const lifecycleLayer = (config: ServerConfigShape, registries: Plugins.Registries = Plugins.builtIn) =>
  Layer.mergeAll(
    JobQueue.layerWith({
      heartbeatInterval: config.topology.policy.jobHeartbeat,
      leaseTimeout: config.topology.policy.jobLeaseTimeout
    }),
    Storages.layerFromRegistry,
    Layer.succeed(LifecyclePolicy, config.topology.policy),
    Layer.succeed(Audit.LocationAudits, Audit.locationAuditsOf(config.topology))
  ).pipe(Layer.provideMerge(Plugins.layer(registries)))

/** Runs every stage's workers and planners for the given sites, until the layer is released. */
export const workersLayer = (sites: ReadonlyArray<string>) =>
  Layer.scopedDiscard(Effect.forEach(sites, (site) => Engine.runSite(site, Stages.all), { discard: true }))

/** The public types of the assembly live beside its typed exports. */
export type { ServeOptions, ServeWorkers } from "./Assembly.js"

/** Why a command names a site the configuration does not have. */
export class UnknownSite extends Data.TaggedError("UnknownSite")<{ readonly site: string; readonly known: ReadonlyArray<string> }> {
  override get message(): string {
    return `no site is named "${this.site}" in the configuration; its sites are ${this.known.join(", ")}`
  }
}

const sitesToRun = (config: ServerConfigShape, workers: ServeWorkers | undefined) =>
  Effect.gen(function* () {
    const known = config.topology.sites.map((s) => s.name)
    // The embedded default runs everything in one process; against real infrastructure each
    // site's workers run where its disks are (`ccat worker --site`), unless told otherwise.
    const chosen = workers ?? (config.databaseUrl === undefined ? "all" : "none")
    const sites = chosen === "all" ? known : chosen === "none" ? [] : chosen
    for (const site of sites) if (!known.includes(site)) return yield* new UnknownSite({ site, known })
    return sites
  })

/** The registries of the built-in drivers and adapters plus the plugins', or why they cannot be registered. */
export const registriesOf = (plugins: Plugins.Plugins) => Effect.suspend(() => Plugins.registries(plugins))

/**
 * The whole reference server for a loaded configuration, as a layer: the ops-db (migrated, the
 * topology synchronised), the API listening, the chosen sites' workers, built with `registries`
 * (which the configuration must have been loaded with). Its context holds the HTTP server, so an
 * embedding program or a test can ask where it listens.
 */
export const serverLayer = (
  config: ServerConfigShape,
  workers: ServeWorkers | undefined,
  registries: Plugins.Registries = Plugins.builtIn
) =>
  Layer.unwrapEffect(Effect.gen(function* () {
    const sites = yield* sitesToRun(config, workers)
    // Only `serve` pushes to InfluxDB: the ops-db series are the same in every process, so
    // pushes from workers too would double what a dashboard sums.
    const app = Layer.mergeAll(
      Layer.effectDiscard(announce),
      HttpServerLive.layer,
      workersLayer(sites),
      InfluxPush.layerConfig,
      Notifier.layerOf(config.notifications)
    ).pipe(
      Layer.provideMerge(HttpServerLive.listen),
      Layer.provideMerge(Metrics.layer()),
      Layer.provideMerge(lifecycleLayer(config, registries)),
      Layer.provideMerge(Layer.effectDiscard(syncTopology)),
      Layer.provideMerge(opsDbLayer(config)),
      Layer.provideMerge(Layer.succeed(ServerConfig, config))
    )
    return app
  }))

/**
 * The whole reference server: runs until interrupted (Ctrl-C, SIGTERM), then stops cleanly. An
 * integrator's server passes its drivers and adapters here (see examples/custom-server).
 */
export const serve = (options: ServeOptions) =>
  Effect.gen(function* () {
    const registries = yield* registriesOf(options)
    const config = yield* load({ ...options, registries })
    return yield* Layer.launch(serverLayer(config, options.workers, registries))
  }).pipe(Effect.provide(Logging.layerConfig))

/** One site's lifecycle workers, without the API: `ccat worker --site NAME`. */
export const worker = (options: LoadOptions & Plugins.Plugins & { readonly site: string }) =>
  Effect.gen(function* () {
    const registries = yield* registriesOf(options)
    const config = yield* load({ ...options, registries })
    const sites = yield* sitesToRun(config, [options.site])
    const app = workersLayer(sites).pipe(
      Layer.provideMerge(lifecycleLayer(config, registries)),
      Layer.provideMerge(Layer.effectDiscard(syncTopology)),
      Layer.provideMerge(opsDbLayer(config)),
      Layer.provideMerge(Layer.succeed(ServerConfig, config))
    )
    return yield* Layer.launch(app)
  }).pipe(Effect.provide(Logging.layerConfig))

/**
 * Applies pending migrations; returns the ones it applied, as `[id, name]`. A contract step is
 * refused, with nothing applied, unless `previousReleaseStopped` says no process of the previous
 * release runs any more.
 */
export const migrate = (options: LoadOptions & { readonly previousReleaseStopped?: boolean | undefined }) =>
  Effect.gen(function* () {
    const config = yield* load(options)
    return yield* ContractGuard.migrate({ caller: "migrate", previousReleaseStopped: options.previousReleaseStopped === true }).pipe(
      Effect.provide(opsDbLayer(config, false))
    )
  })
