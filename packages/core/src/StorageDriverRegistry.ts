/**
 * Storage drivers found by technology name. A driver is registered with the Schema of its own
 * options and a factory, so a location's `driver:` options are decoded by the one schema the
 * driver owns, at start (every problem named by field, before anything is written) and again when
 * a worker builds the storage from what the ops-db holds. The built-in drivers (disk, s3, tape)
 * register themselves the same way an integrator's driver does.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { formatIssues, type LocationType, Slug } from "./internal/TopologySchema.js"
import type * as StorageDriver from "./StorageDriver.js"
import type * as StorageError from "./StorageError.js"

/** The location a storage is built for, for names in errors, spans and logs. */
export interface Location {
  readonly id: string
  readonly name: string
}

/**
 * A storage driver as the server finds it. `A` is the decoded options, `I` what an operator
 * writes under a location's `driver:` (YAML or JSON values).
 */
export interface Driver<A = any, I = any> {
  /** The technology name a location names in `technology:` (lower case, as `disk`, `s3`). */
  readonly technology: string
  /** The driver's options; decoded strictly, so a misspelt option is refused, named. */
  readonly options: Schema.Schema<A, I>
  /**
   * Builds the storage of one location. What it acquires in the scope (sockets, workers) is
   * released when the server's storages close; each location's storage is built once per process.
   */
  readonly make: (options: A, location: Location) => Effect.Effect<StorageDriver.Service, StorageError.StorageError, Scope.Scope>
  /**
   * The folder on this machine the location owns, if it has one: no two locations' folders may be
   * the same or one inside another (each storage sweeps and lists its whole folder). Omitted for
   * stores without a local folder (object stores).
   */
  readonly root?: ((options: A) => string | undefined) | undefined
  /**
   * True when each object is a plain file at `root/key`, so transfer adapters may move bundles
   * by path there and staging may hand out paths there (disk). False when the folder holds the
   * driver's own layout (a tape driver's cache and catalog).
   */
  readonly pathAccess?: boolean | undefined
  /** The location types the driver may serve (tape: LONG_TERM_ARCHIVE only); every type when omitted. */
  readonly locationTypes?: ReadonlyArray<LocationType> | undefined
}

/** Declares a driver, keeping its options' type between the schema and the factory. */
export const define = <A, I>(driver: Driver<A, I>): Driver => driver as Driver

/** The registered drivers, by technology. */
export interface Registry {
  readonly drivers: ReadonlyMap<string, Driver>
}

/** The registry the server builds storages from. */
export class StorageDriverRegistry extends Context.Tag("@ccat/core/StorageDriverRegistry")<StorageDriverRegistry, Registry>() {}

/** Why a set of drivers cannot form a registry: a name that is not a technology name, or one name twice. */
export class RegistryError extends Schema.TaggedError<RegistryError>()("StorageDriverRegistryError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `storage drivers cannot be registered: ${this.problems.join("; ")}`
  }
}

const isSlug = Schema.is(Slug)

/**
 * A registry of the given drivers. A later driver of the same technology replaces an earlier
 * one, so an integrator can swap a built-in driver (`[...builtIn, myDisk]`); a technology name
 * that a configuration could not name is refused.
 */
export const make = (drivers: ReadonlyArray<Driver>): Either.Either<Registry, RegistryError> => {
  const bad = drivers.filter((d) => !isSlug(d.technology)).map((d) =>
    `"${d.technology}" is not a technology name (a-z, 0-9 and -, starting with a letter)`
  )
  if (bad.length > 0) return Either.left(new RegistryError({ problems: bad }))
  return Either.right({ drivers: new Map(drivers.map((d) => [d.technology, d])) })
}

/** A registry of the given drivers as a layer; a bad registration fails the layer. */
export const layer = (drivers: ReadonlyArray<Driver>): Layer.Layer<StorageDriverRegistry, RegistryError> =>
  Layer.effect(StorageDriverRegistry, make(drivers))

/** The registered technology names, sorted, for messages. */
export const names = (registry: Registry): ReadonlyArray<string> => [...registry.drivers.keys()].sort()

const strict = { errors: "all", onExcessProperty: "error" } as const

/**
 * A location's options decoded by its technology's driver, or every problem, each naming its
 * option (`root: ...`) or the technology itself when no driver is registered for it.
 */
export const decode = (
  registry: Registry,
  technology: string,
  options: unknown
): Either.Either<{ readonly driver: Driver; readonly options: unknown }, ReadonlyArray<string>> => {
  const driver = registry.drivers.get(technology)
  if (driver === undefined) {
    return Either.left([
      `technology: no storage driver is registered for "${technology}"; registered: ${names(registry).join(", ") || "none"}`
    ])
  }
  return Either.match(Schema.decodeUnknownEither(driver.options, strict)(options), {
    onLeft: (e) => Either.left(formatIssues(e).map((p) => p.startsWith("(top level): ") ? `driver: ${p.slice(13)}` : `driver.${p}`)),
    onRight: (decoded) => Either.right({ driver, options: decoded })
  })
}

/**
 * The folder on this machine where a location's objects are plain files at their keys (its
 * driver declares `pathAccess`), for transfer adapters and staging that work by path; undefined
 * for any other location, or options that do not decode.
 */
export const localRoot = (registry: Registry, technology: string, options: unknown): string | undefined => {
  const decoded = decode(registry, technology, options)
  if (Either.isLeft(decoded) || decoded.right.driver.pathAccess !== true) return undefined
  return decoded.right.driver.root?.(decoded.right.options)
}
