/**
 * The lift of a storage driver: how `StorageDriver.make` turns a driver's few primitives into the
 * full service (validated keys, capability checks, checksums computed in the same pass as the
 * write, verification, derived exists/copy/listAll, retries of transient failures), written once
 * for every driver. The contract it implements, with its failure rules, is `StorageDriver.ts`.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Checksum from "../Checksum.js"
import * as RelativePath from "../RelativePath.js"
import type { ByteRange, ListOptions, Minimal, ObjectInfo, PutOptions, Service } from "../StorageDriver.js"
import type { Hasher, HasherFactory } from "../StorageHasher.js"
import { StorageError } from "../StorageError.js"

/** The youngest temporary files a sweep may remove (see `StorageDriver.minimumSweepAge`). */
export const minimumSweepAge: Duration.Duration = Duration.hours(1)

/** The age `sweepTemporary` removes temporary files at when the caller does not say. */
export const defaultSweepAge: Duration.Duration = Duration.hours(24)

/** The page size limit of `list`, the same as S3's. */
export const maxListLimit = 1000

/** A `readEach` consumer's own failure, kept apart from the driver's so it is never retried. */
class ConsumerFailed<E> {
  constructor(readonly error: E) {}
}

/** Waits while a hasher that works off this thread asks for it (see `Hasher.ready`). */
const hasherReady = (h: Hasher, final: boolean): Effect.Effect<void> =>
  h.ready === undefined ? Effect.void : Effect.suspend(() => {
    const waiting = h.ready!(final)
    return waiting === undefined ? Effect.void : Effect.promise(() => waiting)
  })

/**
 * Lifts a minimal driver into the full service, retrying transient failures on `schedule` and
 * hashing with `hasher` (undefined: checksum operations fail Unsupported).
 */
export const lift = (driver: Minimal, schedule: Schedule.Schedule<unknown, StorageError>, hasher: HasherFactory | undefined): Service => {
  const name = driver.name
  const caps = driver.capabilities
  if (caps.list && driver.list === undefined) throw new Error(`driver ${name} declares list but has no list()`)
  if (caps.presign && driver.presign === undefined) throw new Error(`driver ${name} declares presign but has no presign()`)
  if (caps.sweepTemporary && driver.sweepTemporary === undefined) {
    throw new Error(`driver ${name} declares sweepTemporary but has no sweepTemporary()`)
  }
  const fail = (method: string, reason: StorageError["reason"], description: string, key?: string) =>
    new StorageError({ reason, driver: name, method, key, description })
  const retrying = <A>(effect: Effect.Effect<A, StorageError>) => Effect.retry(effect, schedule)

  const validKey = (method: string, key: string): Effect.Effect<RelativePath.RelativePath, StorageError> => {
    const problem = typeof key === "string" ? RelativePath.problem(key) : "a key must be a string"
    return problem === undefined
      ? Effect.succeed(key as RelativePath.RelativePath)
      : Effect.fail(fail(method, "PermissionDenied", `unsafe key: ${problem}`, String(key)))
  }
  const hasherFor = (method: string) =>
    hasher === undefined
      ? Effect.fail(fail(method, "Unsupported", "no hash implementation in this runtime; pass options.hasher to make"))
      : Effect.succeed(hasher)

  const put = Effect.fn("StorageDriver.put")(function* <E>(
    key: string,
    body: Stream.Stream<Uint8Array, E>,
    putOptions: PutOptions = {}
  ) {
    const k = yield* validKey("put", key)
    const expected = putOptions.checksum
    if (expected !== undefined && Checksum.problem(expected) !== undefined) {
      return yield* fail("put", "Corrupt", `invalid expected checksum: ${Checksum.problem(expected)}`, key)
    }
    const algorithm = expected === undefined ? putOptions.algorithm ?? Checksum.defaultAlgorithm : Checksum.parse(expected).algorithm
    const makeHasher = yield* hasherFor("put")
    let digest: Checksum.Checksum | undefined
    let bytes = 0
    const measured: Stream.Stream<Uint8Array, E | StorageError> = Stream.suspend(() => {
      const h = makeHasher(algorithm)
      digest = undefined
      bytes = 0
      return body.pipe(
        // a plain map, not an effect per chunk: with `mapChunksEffect` here the body's buffers
        // lived long enough to set off 17-104 full collections per 2 GiB (against 3); a hasher
        // off this thread therefore blocks in `update` when its buffer is full, and only the
        // digest is waited for
        Stream.mapChunks((chunk) => {
          for (const part of chunk) {
            h.update(part)
            bytes += part.length
          }
          return chunk
        }),
        Stream.concat(Stream.unwrap(Effect.map(hasherReady(h, true), () => {
          digest = Checksum.make(algorithm, h.digest())
          return expected !== undefined && digest !== expected
            ? Stream.fail(fail("put", "Corrupt", `checksum mismatch: expected ${expected}, got ${digest}`, key))
            : Stream.empty
        })))
      )
    })
    const info = yield* driver.put(k, measured, {
      overwrite: putOptions.overwrite ?? false,
      checksum: expected,
      sizeHint: putOptions.sizeHint,
      digest: () => digest
    })
    if (digest === undefined || info.size !== bytes) {
      // A driver that stopped reading early stored something other than the body: remove it.
      yield* Effect.ignore(driver.delete(k))
      return yield* fail("put", "Corrupt", `driver stored ${info.size} bytes of a ${bytes}-byte body`, key)
    }
    return { ...info, key: k, size: bytes, checksum: digest }
  })

  /** The range of a `get` or `readEach` checked against the capabilities; "empty" for a zero-length one. */
  const validRange = (
    method: string,
    key: string,
    range: ByteRange | undefined
  ): Effect.Effect<ByteRange | undefined | "empty", StorageError> => {
    if (range === undefined) return Effect.succeed(undefined)
    if (!caps.rangeRead) return Effect.fail(fail(method, "Unsupported", "this driver does not read byte ranges", key))
    if (!(range.start >= 0) || (range.end !== undefined && !(range.end >= range.start))) {
      return Effect.fail(fail(method, "PermissionDenied", `invalid range ${range.start}-${range.end}`, key))
    }
    return Effect.succeed(range.end === range.start ? "empty" : range)
  }

  /** The range a read asks for again after `done` bytes of `range` arrived (the whole object first). */
  const resumedRange = (range: ByteRange | undefined, done: number): ByteRange | undefined =>
    range === undefined && done === 0 ? undefined : { start: (range?.start ?? 0) + done, end: range?.end }
  /** Retries a read only while nothing arrived, or when the driver can resume from an offset. */
  const resumable = (done: () => number) => Schedule.whileInput(schedule, () => done() === 0 || caps.rangeRead)

  const get = (key: string, getOptions: { readonly range?: ByteRange | undefined } = {}) =>
    Stream.unwrap(Effect.gen(function* () {
      const k = yield* validKey("get", key)
      const checked = yield* validRange("get", key, getOptions.range)
      if (checked === "empty") return Stream.empty
      const range = checked
      let emitted = 0
      const attempt = Stream.suspend(() =>
        driver.get(k, resumedRange(range, emitted)).pipe(Stream.mapChunks((chunk) => {
          for (const part of chunk) emitted += part.length
          return chunk
        }))
      )
      return Stream.retry(attempt, resumable(() => emitted))
    })).pipe(
      // one span per object read; without a captured stack trace, which costs more than the
      // rest of the span when a package reads thousands of small files
      Stream.withSpan("StorageDriver.get", { attributes: { driver: name, key }, captureStackTrace: false })
    )

  const readEach = <E>(
    key: string,
    consume: (part: Uint8Array) => Effect.Effect<void, E>,
    readOptions: { readonly range?: ByteRange | undefined } = {}
  ): Effect.Effect<number, StorageError | E> =>
    Effect.gen(function* () {
      const k = yield* validKey("readEach", key)
      const range = yield* validRange("readEach", key, readOptions.range)
      if (range === "empty") return 0
      const native = driver.readEach
      if (native === undefined) {
        let bytes = 0
        yield* Stream.runForEach(get(key, { range }), (part) => {
          bytes += part.length
          return consume(part)
        })
        return bytes
      }
      // the consumer's failures are set aside as a result, so only the driver's own are retried
      let consumed = 0
      const attempt = Effect.suspend(() =>
        native(k, resumedRange(range, consumed), (part) =>
          Effect.mapError(
            Effect.tap(consume(part), () => {
              consumed += part.length
            }),
            (error) => new ConsumerFailed(error)
          ))
      ).pipe(
        Effect.as(undefined),
        Effect.catchIf((e): e is ConsumerFailed<E> => e instanceof ConsumerFailed, (e) => Effect.succeed(e))
      )
      const failed = yield* Effect.retry(attempt, resumable(() => consumed))
      if (failed !== undefined) return yield* Effect.fail(failed.error)
      return consumed
    }).pipe(Effect.withSpan("StorageDriver.readEach", { attributes: { driver: name, key }, captureStackTrace: false }))

  const stat = Effect.fn("StorageDriver.stat")(function* (key: string) {
    const k = yield* validKey("stat", key)
    return yield* retrying(driver.stat(k))
  })

  const readAtMost = Effect.fn("StorageDriver.readAtMost", { captureStackTrace: false })(function* (key: string, limit: number) {
    const k = yield* validKey("readAtMost", key)
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return yield* fail("readAtMost", "PermissionDenied", `limit must be a non-negative integer, got ${limit}`, key)
    }
    if (driver.readAtMost !== undefined) return yield* retrying(driver.readAtMost(k, limit))
    const parts: Array<Uint8Array> = []
    let bytes = 0
    yield* get(key, caps.rangeRead ? { range: { start: 0, end: limit + 1 } } : {}).pipe(
      Stream.takeWhile(() => bytes <= limit),
      Stream.runForEach((part) =>
        Effect.sync(() => {
          parts.push(part)
          bytes += part.length
        })
      )
    )
    if (parts.length === 1) return parts[0].length <= limit + 1 ? parts[0] : parts[0].subarray(0, limit + 1)
    const out = new Uint8Array(Math.min(bytes, limit + 1))
    let at = 0
    for (const part of parts) {
      const piece = part.subarray(0, out.length - at)
      out.set(piece, at)
      at += piece.length
      if (at === out.length) break
    }
    return out
  })

  const exists = Effect.fn("StorageDriver.exists")(function* (key: string) {
    return yield* stat(key).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false))
    )
  })

  const remove = Effect.fn("StorageDriver.delete")(function* (key: string) {
    const k = yield* validKey("delete", key)
    yield* retrying(driver.delete(k))
  })

  const list = Effect.fn("StorageDriver.list")(function* (listOptions: ListOptions = {}) {
    if (!caps.list || driver.list === undefined) return yield* fail("list", "Unsupported", "this driver cannot list keys")
    const limit = listOptions.limit ?? maxListLimit
    if (!Number.isInteger(limit) || limit < 1 || limit > maxListLimit) {
      return yield* fail("list", "PermissionDenied", `limit must be an integer from 1 to ${maxListLimit}`)
    }
    const prefix = listOptions.prefix ?? ""
    if (prefix.startsWith("/") || prefix.split("/").some((p) => p === "..") || prefix.includes("\0")) {
      return yield* fail("list", "PermissionDenied", `unsafe prefix ${JSON.stringify(prefix)}`)
    }
    return yield* retrying(driver.list({ prefix, cursor: listOptions.cursor, limit }))
  })

  const listAll = (listOptions: { readonly prefix?: string | undefined } = {}) =>
    Stream.paginateChunkEffect(undefined as string | undefined | null, (cursor) =>
      cursor === null
        ? Effect.succeed([Chunk.empty<ObjectInfo>(), Option.none()] as const)
        : list({ prefix: listOptions.prefix, cursor }).pipe(
          Effect.map((page) =>
            [Chunk.fromIterable(page.items), page.cursor === undefined ? Option.none() : Option.some(page.cursor)] as const
          )
        ))

  const checksum = Effect.fn("StorageDriver.checksum")(function* (key: string, algorithm: Checksum.Algorithm = Checksum.defaultAlgorithm) {
    const info = yield* stat(key)
    if (info.checksum !== undefined && Checksum.parse(info.checksum).algorithm === algorithm) return info.checksum
    return yield* hashObject("checksum", key, algorithm)
  })

  const hashObject = (method: string, key: string, algorithm: Checksum.Algorithm) =>
    Effect.flatMap(hasherFor(method), (makeHasher) =>
      Effect.suspend(() => {
        const h = makeHasher(algorithm)
        // `update` is done with the bytes when it returns, so the driver may reuse its buffers
        return readEach(key, (part) => Effect.zipRight(Effect.sync(() => h.update(part)), hasherReady(h, false))).pipe(
          Effect.zipRight(hasherReady(h, true)),
          Effect.map(() => Checksum.make(algorithm, h.digest()))
        )
      }))

  const verify = Effect.fn("StorageDriver.verify")(function* (key: string, expected: Checksum.Checksum) {
    const info = yield* stat(key)
    const actual = yield* hashObject("verify", key, Checksum.parse(expected).algorithm)
    if (actual !== expected) return yield* fail("verify", "Corrupt", `checksum mismatch: expected ${expected}, got ${actual}`, key)
    return { ...info, checksum: actual }
  })

  const copy = Effect.fn("StorageDriver.copy")(function* (
    from: string,
    to: string,
    copyOptions: { readonly overwrite?: boolean | undefined } = {}
  ) {
    const src = yield* validKey("copy", from)
    const dst = yield* validKey("copy", to)
    const overwrite = copyOptions.overwrite ?? false
    const source = yield* stat(src)
    if (caps.nativeCopy && driver.copy !== undefined) {
      const native = yield* retrying(driver.copy(src, dst, { overwrite })).pipe(
        Effect.map(Option.some),
        Effect.catchIf((e) => e.reason === "Unsupported", () => Effect.succeedNone)
      )
      if (Option.isSome(native)) {
        if (native.value.size !== source.size) {
          yield* Effect.ignore(driver.delete(dst))
          return yield* fail("copy", "Corrupt", `copy has ${native.value.size} bytes, source ${source.size}`, to)
        }
        return { ...native.value, checksum: native.value.checksum ?? source.checksum }
      }
    }
    return yield* put(dst, get(src), { overwrite, checksum: source.checksum, sizeHint: source.size })
  })

  const space = Effect.fn("StorageDriver.space")(function* () {
    if (driver.space === undefined) return yield* fail("space", "Unsupported", "this driver cannot report free space")
    return yield* retrying(driver.space())
  })

  const presign = Effect.fn("StorageDriver.presign")(function* (
    key: string,
    presignOptions: { readonly method?: "GET" | "PUT"; readonly expiresIn?: Duration.DurationInput } = {}
  ) {
    const k = yield* validKey("presign", key)
    if (!caps.presign || driver.presign === undefined) return yield* fail("presign", "Unsupported", "this driver cannot presign URLs", key)
    return yield* retrying(driver.presign(k, {
      method: presignOptions.method ?? "GET",
      expiresIn: Duration.decode(presignOptions.expiresIn ?? "1 hour")
    }))
  })

  const recall = Effect.fn("StorageDriver.recall")(function* (keys: ReadonlyArray<string>) {
    const valid = yield* Effect.forEach(keys, (k) => validKey("recall", k))
    if (driver.recall === undefined || valid.length === 0) return
    yield* retrying(driver.recall(valid))
  })

  const release = Effect.fn("StorageDriver.release")(function* (keys: ReadonlyArray<string>) {
    const valid = yield* Effect.forEach(keys, (k) => validKey("release", k))
    if (driver.release === undefined || valid.length === 0) return
    yield* retrying(driver.release(valid))
  })

  const sweepTemporary = Effect.fn("StorageDriver.sweepTemporary")(function* (
    sweepOptions: { readonly olderThan?: Duration.DurationInput | undefined } = {}
  ) {
    if (!caps.sweepTemporary || driver.sweepTemporary === undefined) {
      return yield* fail("sweepTemporary", "Unsupported", "this driver cannot sweep temporary files")
    }
    const age = Duration.decodeUnknown(sweepOptions.olderThan ?? defaultSweepAge)
    if (Option.isNone(age) || !Duration.isFinite(age.value) || Duration.lessThan(age.value, minimumSweepAge)) {
      return yield* fail(
        "sweepTemporary",
        "PermissionDenied",
        `olderThan must be a finite duration of at least ${Duration.format(minimumSweepAge)}, got ${String(sweepOptions.olderThan)}: ` +
          "a younger temporary file may belong to a write still running"
      )
    }
    const now = yield* Clock.currentTimeMillis
    const sweep = driver.sweepTemporary
    return yield* retrying(Effect.suspend(() => sweep({ before: new Date(now - Duration.toMillis(age.value)) })))
  })

  return {
    name,
    capabilities: caps,
    put,
    get,
    readEach,
    stat,
    readAtMost,
    exists,
    delete: remove,
    list,
    listAll,
    copy,
    checksum,
    verify,
    space,
    presign,
    recall,
    release,
    sweepTemporary
  }
}
