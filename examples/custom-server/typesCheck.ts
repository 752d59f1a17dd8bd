/**
 * What an integrator's TypeScript sees of @ccat/server: real types, not `any`. Type-checked with
 * the repository's sources (`npm run typecheck`) and, by declarations.test.ts, with this folder's
 * tsconfig.json against the published declarations (dist/lib/*.d.ts).
 */
import type { StorageDriverRegistry } from "@ccat/core"
import { Main, type Plugins, type ServerConfig, type Storages } from "@ccat/server"
import type * as HttpServer from "@effect/platform/HttpServer"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

/** The server of a configuration as a layer whose services an embedding program may use. */
export const embedded = (config: ServerConfig.ServerConfigShape, registries: Plugins.Registries) => {
  const layer: Layer.Layer<HttpServer.HttpServer | SqlClient.SqlClient | Storages.Storages, Main.StartError> = Main.serverLayer(
    config,
    "all",
    registries
  )
  return layer
}

/** A start failure is told apart by its tag. */
export const describe = (error: Main.StartError): string => `${error._tag}: ${error.message}`

/** serve runs until interrupted: it never succeeds with a value. */
export const run: (drivers: ReadonlyArray<StorageDriverRegistry.Driver>) => Effect.Effect<never, Main.StartError> = (drivers) =>
  Main.serve({ configFile: "ccat.yaml", drivers, workers: "none" })

// @ts-expect-error: serve takes options, not a number (were it `any`, this would pass)
export const wrong = () => Main.serve(42)
