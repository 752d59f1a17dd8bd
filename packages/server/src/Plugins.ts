/**
 * The storage drivers and transfer adapters a server runs with: the built-in ones (disk, s3,
 * tape; local, rsync, bbcp) and an integrator's. The configuration is checked against the same
 * registries the workers build storages and adapters from, so a technology, adapter or option
 * the start accepted is one the workers can build, and one it refused is named by field.
 */
import { StorageDriverRegistry, type Topology, TransferAdapterRegistry } from "@ccat/core"
import { Drivers } from "@ccat/storage-drivers"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Adapters from "./lifecycle/Adapters.js"

/** Drivers and adapters added to the built-in ones; one with a built-in's name replaces it. */
export interface Plugins {
  readonly drivers?: ReadonlyArray<StorageDriverRegistry.Driver> | undefined
  readonly adapters?: ReadonlyArray<TransferAdapterRegistry.Adapter> | undefined
}

/** The registries of a server: the built-in drivers and adapters, then the plugins'. */
export interface Registries extends Topology.Registries {
  readonly drivers: StorageDriverRegistry.Registry
  readonly adapters: TransferAdapterRegistry.Registry
}

/** The registries of the built-in drivers and adapters plus `plugins`; a name that is not a name is refused. */
export const registries = (
  plugins: Plugins = {}
): Either.Either<Registries, StorageDriverRegistry.RegistryError | TransferAdapterRegistry.RegistryError> =>
  Either.all({
    drivers: StorageDriverRegistry.make([...Drivers.builtIn, ...(plugins.drivers ?? [])]),
    adapters: TransferAdapterRegistry.make([...Adapters.builtIn, ...(plugins.adapters ?? [])])
  })

/** The built-in drivers and adapters. */
export const builtIn: Registries = Either.getOrThrow(registries())

/** Both registries as services, for the storages and the transfer stage. */
export const layer = (
  r: Registries
): Layer.Layer<StorageDriverRegistry.StorageDriverRegistry | TransferAdapterRegistry.TransferAdapterRegistry> =>
  Layer.merge(
    Layer.succeed(StorageDriverRegistry.StorageDriverRegistry, r.drivers),
    Layer.succeed(TransferAdapterRegistry.TransferAdapterRegistry, r.adapters)
  )
