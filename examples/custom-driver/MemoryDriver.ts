/**
 * An example custom storage driver: objects kept in process memory. It is the smallest driver
 * that honours the whole contract, to copy from when writing one for your own storage:
 *
 * 1. implement the five primitives of `StorageDriver.Minimal` (put, get, stat, delete, list);
 * 2. declare capabilities truthfully;
 * 3. lift it with `StorageDriver.make` and provide it as a layer;
 * 4. run `StorageDriverSuite.run` against the layer (see memory-driver.test.ts);
 * 5. register it by a technology name with the Schema of its options (`driver` below), so a
 *    server can serve locations with it (see examples/custom-server).
 *
 * Real drivers stream to their backend; this one holds each object's chunks in memory, which is
 * fine for tests and caches, not for archives.
 */
import { type RelativePath, StorageDriver, StorageDriverRegistry, StorageError } from "@ccat/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

interface StoredObject {
  readonly chunks: ReadonlyArray<Uint8Array>
  readonly size: number
  readonly checksum: StorageDriver.ObjectInfo["checksum"]
  readonly modifiedAt: Date
}

/** The primitives; `make` below lifts them. */
export const makeMinimal = (name = "memory"): StorageDriver.Minimal => {
  const objects = new Map<string, StoredObject>()
  const notFound = (method: string, key: string) =>
    new StorageError.StorageError({ reason: "NotFound", driver: name, method, key, description: "no such object" })
  const info = (key: RelativePath.RelativePath, o: StoredObject): StorageDriver.ObjectInfo => ({
    key,
    size: o.size,
    checksum: o.checksum,
    modifiedAt: o.modifiedAt
  })

  return {
    name,
    capabilities: { ...StorageDriver.noCapabilities, rangeRead: true, list: true },

    // Collect the body aside and publish it only once the stream ended without failure: an
    // interrupted or failed body leaves nothing (rule: atomic put).
    put: (key, body, options) =>
      Effect.gen(function* () {
        if (!options.overwrite && objects.has(key)) {
          return yield* new StorageError.StorageError({ reason: "AlreadyExists", driver: name, method: "put", key })
        }
        const chunks: Array<Uint8Array> = []
        let size = 0
        yield* Stream.runForEachChunk(body, (chunk) =>
          Effect.sync(() => {
            for (const c of chunk) {
              chunks.push(c.slice())
              size += c.length
            }
          }))
        // a concurrent writer may have won meanwhile: re-check, then swap in one step
        if (!options.overwrite && objects.has(key)) {
          return yield* new StorageError.StorageError({ reason: "AlreadyExists", driver: name, method: "put", key })
        }
        const stored: StoredObject = { chunks, size, checksum: options.digest(), modifiedAt: new Date() }
        objects.set(key, stored)
        return info(key, stored)
      }),

    get: (key, range) =>
      Stream.suspend(() => {
        const o = objects.get(key)
        if (o === undefined) return Stream.fail(notFound("get", key))
        const start = range?.start ?? 0
        const end = Math.min(range?.end ?? o.size, o.size)
        let offset = 0
        const parts: Array<Uint8Array> = []
        for (const c of o.chunks) {
          const from = Math.max(start - offset, 0)
          const to = Math.min(end - offset, c.length)
          if (to > from) parts.push(c.subarray(from, to))
          offset += c.length
        }
        return Stream.fromChunk(Chunk.unsafeFromArray(parts))
      }),

    stat: (key) =>
      Effect.suspend(() => {
        const o = objects.get(key)
        return o === undefined ? Effect.fail(notFound("stat", key)) : Effect.succeed(info(key, o))
      }),

    // deleting a missing object succeeds (rule: idempotent delete)
    delete: (key) => Effect.sync(() => void objects.delete(key)),

    // keys in lexicographic order; the cursor is the last key of the previous page
    list: ({ prefix, cursor, limit }) =>
      Effect.sync(() => {
        const keys = [...objects.keys()].filter((k) => k.startsWith(prefix) && (cursor === undefined || k > cursor)).sort()
        const page = keys.slice(0, limit)
        return {
          items: page.map((k) => info(k as RelativePath.RelativePath, objects.get(k)!)),
          cursor: keys.length > limit ? page[page.length - 1] : undefined
        }
      })
  }
}

/** The full service: keys checked, checksums, verification, copy, retries, from `StorageDriver.make`. */
export const make = (name?: string): StorageDriver.Service => StorageDriver.make(makeMinimal(name))

/** Provides the generic StorageDriver port, so workers use this driver like any other. */
export const layer = (name?: string): Layer.Layer<StorageDriver.StorageDriver> => Layer.sync(StorageDriver.StorageDriver, () => make(name))

/**
 * What a location on this driver may say under `driver:`. The schema is the one source of truth:
 * the server's start decodes a configuration with it (a misspelt option is refused, named) and
 * builds the storage from what it decoded.
 */
export const Options = Schema.Struct({
  /** The driver's name in errors and spans (default `memory:<location>`). */
  label: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true })
})

/**
 * The registration: locations with `technology: memory` are served by this driver. A server
 * builds each location's storage once per process, so a location keeps its objects while the
 * server runs (and loses them when it stops: an example, not an archive).
 */
export const driver: StorageDriverRegistry.Driver = StorageDriverRegistry.define({
  technology: "memory",
  options: Options,
  make: (options, location) => Effect.sync(() => make(options.label ?? `memory:${location.name}`))
})
