/**
 * The storage of each DataLocation, made from its technology and driver options as the ops-db
 * records them. Workers ask "the storage of location X" and get the lifted StorageDriver
 * service; disk, s3 and tape are built in, integrators register drivers for other technologies.
 * A driver that holds resources (an S3 client's sockets, a tape driver's recall workers) keeps
 * them until the scope of the storages closes.
 */
import { StorageDriver, StorageError, Topology } from "@ccat/core"
import { Disk, MtxTapeLibrary, S3, Tape, type TapeLibrary, VirtualTapeLibrary } from "@ccat/storage-drivers"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as path from "node:path"

/** What a driver factory gets: the location's name and its driver options from the configuration. */
export interface LocationSpec {
  readonly id: string
  readonly name: string
  readonly technology: string
  readonly driverConfig: Readonly<Record<string, unknown>>
}

/**
 * Builds the storage of a location from its driver options. Resources it acquires in the scope
 * are released when the storages' scope closes (the built storage is cached until then).
 */
export type DriverFactory = (spec: LocationSpec) => Effect.Effect<StorageDriver.Service, StorageError.StorageError, Scope.Scope>

const invalid = (spec: LocationSpec, description: string) =>
  new StorageError.StorageError({ reason: "Unsupported", driver: spec.technology, method: "make", description: `${spec.name}: ${description}` })

/** The disk driver, rooted at `driver.root`; `driver.directIo: false` keeps large writes in the page cache. */
export const diskFactory: DriverFactory = (spec) =>
  typeof spec.driverConfig.root === "string"
    ? Disk.make({
      root: spec.driverConfig.root,
      name: `disk:${spec.name}`,
      // true unless the location says otherwise (Topology refuses anything but a boolean)
      directIo: typeof spec.driverConfig.directIo === "boolean" ? spec.driverConfig.directIo : undefined
    })
    : Effect.fail(invalid(spec, "a disk location needs driver.root"))

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)
const int = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined)

/**
 * The S3 driver for `driver.bucket` (optional `prefix`, `endpoint`, `region`, `forcePathStyle`,
 * `partSize`, `concurrency`, `createBucket`, `tagChecksums`). Credentials are never driver
 * options, since those are stored in the ops-db: `accessKeyIdEnv` / `secretAccessKeyEnv` name
 * the environment variables holding them, else the AWS SDK's default chain applies
 * (AWS_ACCESS_KEY_ID, profiles, instance roles).
 */
export const s3Factory: DriverFactory = (spec) =>
  Effect.gen(function* () {
    const d = spec.driverConfig
    const bucket = text(d.bucket)
    if (bucket === undefined) return yield* invalid(spec, "an s3 location needs driver.bucket")
    const secret = Topology.secretDriverOptions.find((k) => k in d)
    if (secret !== undefined) {
      return yield* invalid(spec, `driver.${secret} would store a secret in the ops-db; name environment variables in driver.accessKeyIdEnv and driver.secretAccessKeyEnv instead`)
    }
    const idEnv = text(d.accessKeyIdEnv)
    const secretEnv = text(d.secretAccessKeyEnv)
    if ((idEnv === undefined) !== (secretEnv === undefined)) {
      return yield* invalid(spec, "driver.accessKeyIdEnv and driver.secretAccessKeyEnv go together")
    }
    let credentials: S3.Options["credentials"]
    if (idEnv !== undefined && secretEnv !== undefined) {
      const accessKeyId = process.env[idEnv]
      const secretAccessKey = process.env[secretEnv]
      if (accessKeyId === undefined || secretAccessKey === undefined) {
        return yield* invalid(spec, `the environment variables ${idEnv} and ${secretEnv} must hold the S3 credentials`)
      }
      credentials = { accessKeyId, secretAccessKey }
    }
    return yield* S3.make({
      bucket,
      name: `s3:${spec.name}`,
      prefix: text(d.prefix),
      endpoint: text(d.endpoint),
      region: text(d.region),
      credentials,
      forcePathStyle: typeof d.forcePathStyle === "boolean" ? d.forcePathStyle : undefined,
      partSize: int(d.partSize),
      concurrency: int(d.concurrency),
      createBucket: d.createBucket === true,
      tagChecksums: typeof d.tagChecksums === "boolean" ? d.tagChecksums : undefined
    })
  })

/** A failure of the named tape library, renamed to say which location's library it is. */
const libraryError = (libraryName: string, location: string) => <E>(e: E): E =>
  StorageError.isStorageError(e) && e.driver === libraryName
    ? new StorageError.StorageError({
      reason: e.reason,
      driver: `${libraryName}:${location}`,
      method: e.method,
      key: e.key,
      description: e.description,
      cause: e.cause
    }) as E
    : e

/**
 * The library's failures name the location too: a site may run several libraries, and
 * "mtx-tape.volumes: Unavailable" alone does not say which one an operator must look at.
 * Failures of the bytes being appended (the cache read) keep their own driver's name.
 */
const naming = (library: TapeLibrary.TapeLibrary, location: string): TapeLibrary.TapeLibrary => {
  const rename = libraryError(library.name, location)
  return {
    ...library,
    volumes: Effect.mapError(library.volumes, rename),
    mount: (drive, volume) => Effect.mapError(library.mount(drive, volume), rename),
    seek: (drive, fileNumber) => Effect.mapError(library.seek(drive, fileNumber), rename),
    append: (drive, afterFile, body) => Effect.mapError(library.append(drive, afterFile, body), rename),
    read: (drive) => Stream.mapError(library.read(drive), rename)
  }
}

/**
 * The tape driver (nearline) from `driver` options, decoded by the same rules `ccat config check`
 * applies (`Topology.decodeTapeDriver`): `library: virtual` keeps its volumes as files under
 * `<root>/library`, `library: mtx` drives a real changer and drives through `mtx` and `mt`. The
 * catalog and the disk cache live under `root`. One driver per location per process: two
 * catalogs over one root would each forget the other's writes, which is why `make` builds each
 * location's storage once. The recall workers stop when the storages' scope closes; the mtx
 * backend holds no device between operations, so cartridges stay where they are.
 */
export const tapeFactory: DriverFactory = (spec) =>
  Effect.gen(function* () {
    const decoded = Topology.decodeTapeDriver(spec.driverConfig)
    if (Either.isLeft(decoded)) return yield* invalid(spec, decoded.left.map((p) => `driver.${p}`).join("; "))
    const o = decoded.right
    const library = o.library === "virtual"
      ? yield* VirtualTapeLibrary.make({
        root: path.join(o.root, "library"),
        volumes: o.volumes,
        capacityBytes: o.volumeBytes,
        drives: o.drives,
        mountLatency: Duration.millis(o.mountLatency),
        seekLatency: Duration.millis(o.seekLatency)
      }).pipe(Effect.mapError(libraryError("virtual-tape", spec.name)))
      : MtxTapeLibrary.make({
        changer: o.changer,
        drives: o.drives,
        labels: o.labels,
        capacityBytes: o.volumeBytes,
        blockSize: o.blockSize,
        mt: o.mt,
        mtx: o.mtx
      })
    return yield* Tape.make({ root: o.root, library: naming(library, spec.name), keepOnline: o.keepOnline, name: `tape:${spec.name}` })
  })

/** The storages of locations, cached per location. */
export interface StoragesService {
  /** The storage of a location. */
  readonly of: (spec: LocationSpec) => Effect.Effect<StorageDriver.Service, StorageError.StorageError>
  /** The local folder of a disk location, for transfer adapters that move files by path. */
  readonly rootOf: (spec: LocationSpec) => string | undefined
}

/** Tag of the storages. */
export class Storages extends Context.Tag("@ccat/server/Storages")<Storages, StoragesService>() {}

/**
 * Storages with the given factories per technology (disk, s3 and tape are built in); what the
 * drivers acquire is released with the calling scope. Each location's storage is built once even
 * when many jobs ask for it at the same instant (they wait for the one build); a build that
 * failed is forgotten, so the next request tries again.
 */
export const make = (factories: Readonly<Record<string, DriverFactory>> = {}) =>
  Effect.gen(function* () {
    const all: Record<string, DriverFactory> = { disk: diskFactory, s3: s3Factory, tape: tapeFactory, ...factories }
    const scope = yield* Effect.scope
    const cache = new Map<string, Deferred.Deferred<StorageDriver.Service, StorageError.StorageError>>()
    const of = (spec: LocationSpec) =>
      Effect.gen(function* () {
        const key = `${spec.id}:${JSON.stringify(spec.driverConfig)}`
        const factory = all[spec.technology]
        if (factory === undefined) return yield* invalid(spec, `no driver is registered for technology ${spec.technology}`)
        const fresh = yield* Deferred.make<StorageDriver.Service, StorageError.StorageError>()
        // look up and claim in one step: no other fiber runs between the two
        const [building, mine] = yield* Effect.sync(() => {
          const existing = cache.get(key)
          if (existing !== undefined) return [existing, false] as const
          cache.set(key, fresh)
          return [fresh, true] as const
        })
        if (mine) {
          yield* Scope.extend(factory(spec), scope).pipe(
            Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => cache.delete(key))),
            Effect.intoDeferred(fresh)
          )
        }
        return yield* Deferred.await(building)
      })
    const rootOf = (spec: LocationSpec) =>
      spec.technology === "disk" && typeof spec.driverConfig.root === "string" ? spec.driverConfig.root : undefined
    return { of, rootOf } satisfies StoragesService
  })

/** The storages layer. */
export const layer = (factories: Readonly<Record<string, DriverFactory>> = {}) => Layer.scoped(Storages, make(factories))
