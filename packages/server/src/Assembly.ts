/**
 * The reference server's assembly as the library exports it (`Main` in the index): Main's entry
 * points with their types written out. Main's own inferred types name every internal service and
 * error of the server (the job queue, the stages, the web UI), which a declaration file cannot
 * name and an integrator should not depend on; here a layer offers the services an embedding
 * program uses and fails with the errors it can tell apart.
 */
import { type StorageDriverRegistry, type TransferAdapterRegistry } from "@ccat/core"
import type { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import type * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import type * as Migrator from "@effect/sql/Migrator"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Storages from "./lifecycle/Storages.js"
import * as Main from "./Main.js"
import type * as Plugins from "./Plugins.js"
import type { ConfigLoadError, LoadOptions, ServerConfig, ServerConfigShape } from "./ServerConfig.js"

/** Which sites' workers a server runs in its own process: all, none, or those named. */
export type ServeWorkers = "all" | "none" | ReadonlyArray<string>

/**
 * What a server is built from beyond its configuration: which sites' workers run in the process,
 * and the storage drivers and transfer adapters added to the built-in ones (an integrator's).
 */
export interface ServeOptions extends LoadOptions, Plugins.Plugins {
  readonly workers?: ServeWorkers | undefined
}

/**
 * A failure of the server's own parts, told apart by `_tag` and explained by `message`: the job
 * queue's settings or tables, the web UI's files, the ObsCore publisher's settings, a migration
 * that cannot be planned or a contract step still pending, a site the configuration lacks.
 */
export interface ServerFailure {
  readonly _tag:
    | "JobQueueError"
    | "LeaseOptionsError"
    | "WebUiError"
    | "PublisherError"
    | "MigrationPlanError"
    | "ContractStepsPending"
    | "UnknownSite"
  readonly message: string
}

/** Why the drivers and adapters could not be registered (an empty or repeated name). */
export type RegistryError = StorageDriverRegistry.RegistryError | TransferAdapterRegistry.RegistryError

/** Why a server, a worker or a migration did not start, or stopped. */
export type StartError =
  | ConfigLoadError
  | RegistryError
  | SqlError.SqlError
  | Migrator.MigrationError
  | EmbeddedDatabase.EmbeddedDatabaseError
  | HttpServerError.ServeError
  | ConfigError.ConfigError
  | ServerFailure

/** The services of a running server that an embedding program or a test may use. */
export type ServerServices =
  | HttpServer.HttpServer
  | SqlClient.SqlClient
  | OpsDb.OpsDb
  | ServerConfig
  | Storages.Storages
  | StorageDriverRegistry.StorageDriverRegistry
  | TransferAdapterRegistry.TransferAdapterRegistry

/** The configuration as a layer. */
export const configLayer: (options: LoadOptions) => Layer.Layer<ServerConfig, ConfigLoadError> = Main.configLayer

/**
 * The ops-db for a configuration: `DATABASE_URL` or the embedded PostgreSQL under the data
 * folder, migrated unless `migrate` is false (a contract step is never applied by a start).
 */
export const opsDbLayer: (config: ServerConfigShape, migrate?: boolean) => Layer.Layer<SqlClient.SqlClient | OpsDb.OpsDb, StartError> =
  Main.opsDbLayer

/** The registries of the built-in drivers and adapters plus the plugins', or why they cannot be registered. */
export const registriesOf: (plugins: Plugins.Plugins) => Effect.Effect<Plugins.Registries, RegistryError> = Main.registriesOf

/**
 * The whole reference server for a loaded configuration, as a layer: the ops-db (migrated, the
 * topology synchronised), the API listening, the chosen sites' workers, built with `registries`
 * (which the configuration must have been loaded with).
 */
export const serverLayer: (
  config: ServerConfigShape,
  workers: ServeWorkers | undefined,
  registries?: Plugins.Registries
) => Layer.Layer<ServerServices, StartError> = Main.serverLayer

/**
 * The whole reference server: runs until interrupted (Ctrl-C, SIGTERM), then stops cleanly. An
 * integrator's server passes its drivers and adapters here (see examples/custom-server).
 */
export const serve: (options: ServeOptions) => Effect.Effect<never, StartError> = Main.serve

/** One site's lifecycle workers, without the API (`ccat worker --site NAME`). */
export const worker: (options: LoadOptions & Plugins.Plugins & { readonly site: string }) => Effect.Effect<never, StartError> = Main.worker

/**
 * Applies pending migrations; returns the ones it applied, as `[id, name]`. A contract step is
 * refused, with nothing applied, unless `previousReleaseStopped` says no process of the previous
 * release runs any more.
 */
export const migrate: (
  options: LoadOptions & { readonly previousReleaseStopped?: boolean | undefined }
) => Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, StartError> = Main.migrate
