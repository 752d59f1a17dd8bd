/**
 * The storage of each DataLocation, made from its technology and driver options as the ops-db
 * records them. Workers ask "the storage of location X" and get the lifted StorageDriver
 * service; disk and s3 are built in, integrators register drivers for other technologies.
 * A driver that holds resources (an S3 client's sockets) keeps them until the scope of the
 * storages closes.
 */
import { StorageDriver, StorageError } from "@ccat/core"
import { Disk, S3 } from "@ccat/storage-drivers"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"

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

/** The disk driver, rooted at `driver.root`. */
export const diskFactory: DriverFactory = (spec) =>
  typeof spec.driverConfig.root === "string"
    ? Disk.make({ root: spec.driverConfig.root, name: `disk:${spec.name}` })
    : Effect.fail(invalid(spec, "a disk location needs driver.root"))

const text = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)
const int = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : undefined)

/** Driver options that would put a secret into the ops-db (driver options are stored there and shown). */
const secretKeys = ["accessKeyId", "secretAccessKey", "sessionToken", "credentials"]

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
    const secret = secretKeys.find((k) => k in d)
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
 * Storages with the given factories per technology (disk and s3 are built in); what the drivers
 * acquire is released with the calling scope.
 */
export const make = (factories: Readonly<Record<string, DriverFactory>> = {}) =>
  Effect.gen(function* () {
    const all: Record<string, DriverFactory> = { disk: diskFactory, s3: s3Factory, ...factories }
    const scope = yield* Effect.scope
    const cache = yield* Ref.make(new Map<string, StorageDriver.Service>())
    const of = (spec: LocationSpec) =>
      Effect.gen(function* () {
        const key = `${spec.id}:${JSON.stringify(spec.driverConfig)}`
        const cached = (yield* Ref.get(cache)).get(key)
        if (cached) return cached
        const factory = all[spec.technology]
        if (factory === undefined) return yield* invalid(spec, `no driver is registered for technology ${spec.technology}`)
        const service = yield* Scope.extend(factory(spec), scope)
        yield* Ref.update(cache, (m) => new Map(m).set(key, service))
        return service
      })
    const rootOf = (spec: LocationSpec) =>
      spec.technology === "disk" && typeof spec.driverConfig.root === "string" ? spec.driverConfig.root : undefined
    return { of, rootOf } satisfies StoragesService
  })

/** The storages layer. */
export const layer = (factories: Readonly<Record<string, DriverFactory>> = {}) => Layer.scoped(Storages, make(factories))
