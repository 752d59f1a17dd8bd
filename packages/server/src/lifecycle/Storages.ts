/**
 * The storage of each DataLocation, made from its technology and driver options as the ops-db
 * records them. Workers ask "the storage of location X" and get the lifted StorageDriver
 * service; integrators register drivers for other technologies.
 */
import { StorageDriver, StorageError } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"

/** What a driver factory gets: the location's name and its driver options from the configuration. */
export interface LocationSpec {
  readonly id: string
  readonly name: string
  readonly technology: string
  readonly driverConfig: Readonly<Record<string, unknown>>
}

/** Builds the storage of a location from its driver options. */
export type DriverFactory = (spec: LocationSpec) => Effect.Effect<StorageDriver.Service, StorageError.StorageError>

const invalid = (spec: LocationSpec, description: string) =>
  new StorageError.StorageError({ reason: "Unsupported", driver: spec.technology, method: "make", description: `${spec.name}: ${description}` })

/** The disk driver, rooted at `driver.root`. */
export const diskFactory: DriverFactory = (spec) =>
  typeof spec.driverConfig.root === "string"
    ? Disk.make({ root: spec.driverConfig.root, name: `disk:${spec.name}` })
    : Effect.fail(invalid(spec, "a disk location needs driver.root"))

/** The storages of locations, cached per location. */
export interface StoragesService {
  /** The storage of a location. */
  readonly of: (spec: LocationSpec) => Effect.Effect<StorageDriver.Service, StorageError.StorageError>
  /** The local folder of a disk location, for transfer adapters that move files by path. */
  readonly rootOf: (spec: LocationSpec) => string | undefined
}

/** Tag of the storages. */
export class Storages extends Context.Tag("@ccat/server/Storages")<Storages, StoragesService>() {}

/** Storages with the given factories per technology (disk is built in). */
export const make = (factories: Readonly<Record<string, DriverFactory>> = {}) =>
  Effect.gen(function* () {
    const all: Record<string, DriverFactory> = { disk: diskFactory, ...factories }
    const cache = yield* Ref.make(new Map<string, StorageDriver.Service>())
    const of = (spec: LocationSpec) =>
      Effect.gen(function* () {
        const key = `${spec.id}:${JSON.stringify(spec.driverConfig)}`
        const cached = (yield* Ref.get(cache)).get(key)
        if (cached) return cached
        const factory = all[spec.technology]
        if (factory === undefined) return yield* invalid(spec, `no driver is registered for technology ${spec.technology}`)
        const service = yield* factory(spec)
        yield* Ref.update(cache, (m) => new Map(m).set(key, service))
        return service
      })
    const rootOf = (spec: LocationSpec) =>
      spec.technology === "disk" && typeof spec.driverConfig.root === "string" ? spec.driverConfig.root : undefined
    return { of, rootOf } satisfies StoragesService
  })

/** The storages layer. */
export const layer = (factories: Readonly<Record<string, DriverFactory>> = {}) => Layer.effect(Storages, make(factories))
