/**
 * The storage of each DataLocation, made from its technology and driver options as the ops-db
 * records them. Workers ask "the storage of location X" and get the lifted StorageDriver
 * service, built by the driver registered for the location's technology (disk, s3 and tape are
 * built in; integrators register their own) from options decoded by that driver's own schema.
 * A driver that holds resources (an S3 client's sockets, a tape driver's recall workers) keeps
 * them until the scope of the storages closes.
 */
import { StorageDriver, StorageDriverRegistry, StorageError, Topology } from "@ccat/core"
import { Drivers } from "@ccat/storage-drivers"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"

/** A location as its storage is built for it: its name, its technology and its driver options from the ops-db. */
export interface LocationSpec {
  readonly id: string
  readonly name: string
  readonly technology: string
  readonly driverConfig: Readonly<Record<string, unknown>>
}

const unusable = (spec: LocationSpec, description: string) =>
  new StorageError.StorageError({
    reason: "Unsupported",
    driver: spec.technology,
    method: "make",
    description: `${spec.name}: ${description}`
  })

/** The storages of locations, cached per location. */
export interface StoragesService {
  /** The storage of a location. */
  readonly of: (spec: LocationSpec) => Effect.Effect<StorageDriver.Service, StorageError.StorageError>
  /** The local folder of a location whose objects are files by key there, for transfer adapters and staging that move files by path. */
  readonly rootOf: (spec: LocationSpec) => string | undefined
}

/** Tag of the storages. */
export class Storages extends Context.Tag("@ccat/server/Storages")<Storages, StoragesService>() {}

/** A location's storage is rebuilt when its technology or options change (a configuration sync). */
class Key extends Data.Class<{ readonly id: string; readonly name: string; readonly technology: string; readonly options: string }> {}

/**
 * Storages built by the given registry's drivers; what the drivers acquire is released with the
 * calling scope. Each location's storage is built once even when many jobs ask for it at the same
 * instant (they wait for the one build) and kept until the scope closes; a build that failed is
 * forgotten, so the next request tries again.
 */
export const fromRegistry = (registry: StorageDriverRegistry.Registry): Effect.Effect<StoragesService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const built = yield* RcMap.make({
      lookup: (key: Key) =>
        Effect.gen(function* () {
          const spec: LocationSpec = { id: key.id, name: key.name, technology: key.technology, driverConfig: JSON.parse(key.options) }
          // the start refuses these; a row written by another version of the configuration may still hold one
          const secret = Topology.secretDriverOptions.find((k) => k in spec.driverConfig)
          if (secret !== undefined) {
            return yield* unusable(
              spec,
              `driver.${secret} would store a secret in the ops-db; name environment variables in driver.accessKeyIdEnv and driver.secretAccessKeyEnv instead`
            )
          }
          const decoded = StorageDriverRegistry.decode(registry, spec.technology, spec.driverConfig)
          if (Either.isLeft(decoded)) return yield* unusable(spec, decoded.left.join("; "))
          return yield* decoded.right.driver.make(decoded.right.options, { id: spec.id, name: spec.name })
        }),
      // kept while the storages live: a tape catalog or an S3 client is built once per process
      idleTimeToLive: Duration.infinity
    })
    const of = (spec: LocationSpec) => {
      const key = new Key({ id: spec.id, name: spec.name, technology: spec.technology, options: JSON.stringify(spec.driverConfig) })
      return Effect.scoped(RcMap.get(built, key)).pipe(Effect.tapError(() => RcMap.invalidate(built, key)))
    }
    const rootOf = (spec: LocationSpec) => StorageDriverRegistry.localRoot(registry, spec.technology, spec.driverConfig)
    return { of, rootOf } satisfies StoragesService
  })

/**
 * Storages built by the given drivers (default: the built-in disk, s3 and tape); a later driver
 * of the same technology replaces an earlier one.
 */
export const make = (
  drivers: ReadonlyArray<StorageDriverRegistry.Driver> = Drivers.builtIn
): Effect.Effect<StoragesService, never, Scope.Scope> => Effect.flatMap(Effect.orDie(StorageDriverRegistry.make(drivers)), fromRegistry)

/** The storages layer, built by the registry in the context. */
export const layerFromRegistry: Layer.Layer<Storages, never, StorageDriverRegistry.StorageDriverRegistry> = Layer.scoped(
  Storages,
  Effect.flatMap(StorageDriverRegistry.StorageDriverRegistry, fromRegistry)
)

/** The storages layer with the given drivers (default: the built-in ones). */
export const layer = (drivers: ReadonlyArray<StorageDriverRegistry.Driver> = Drivers.builtIn): Layer.Layer<Storages> =>
  Layer.scoped(Storages, make(drivers))
