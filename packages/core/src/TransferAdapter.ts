/**
 * The TransferAdapter port (DESIGN §6): moves a file or a directory tree from an endpoint at one
 * site to an endpoint at another, reports progress as a Stream, verifies at the destination,
 * resumes where the tool can, and classifies failures as retryable or not.
 *
 * An integrator writes a small `Minimal` adapter (size, copy, manifest, remove); `make` lifts it
 * into the full service, which adds what every adapter needs and none should re-implement:
 * checksum verification done by us at the destination, a size-scaled deadline, and retries of
 * retryable failures with exponential backoff, jitter and a cap.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Take from "effect/Take"
import * as Backoff from "./Backoff.js"
import * as Checksum from "./Checksum.js"
import * as TransferEndpoint from "./TransferEndpoint.js"
import * as TransferError from "./TransferError.js"

/** What is moved: one file, or a directory tree (its contents mirror the source's). */
export const Kind = Schema.Literal("file", "directory")
/** What is moved. */
export type Kind = typeof Kind.Type

/** Size and checksum of one file, as a manifest entry. */
export const Entry = Schema.Struct({ size: Schema.Number, checksum: Checksum.Checksum })
/** Size and checksum of one file. */
export type Entry = typeof Entry.Type

/**
 * Every regular file of an endpoint with its size and checksum, keyed by path relative to the
 * endpoint (`"."` for a single-file endpoint, see `fileKey`). Verification compares two of them.
 */
export const Manifest = Schema.Record({ key: Schema.String, value: Entry })
/** Files of an endpoint with size and checksum. */
export type Manifest = typeof Manifest.Type

/** The manifest key of a single-file endpoint. */
export const fileKey = "."

/**
 * One transfer. For `kind: "file"` the destination path is the final file name; for
 * `"directory"` it is the directory that ends up holding the source's files (existing files are
 * replaced, others left alone). Missing parent directories of the destination are created.
 */
export const Request = Schema.Struct({
  source: TransferEndpoint.Endpoint,
  destination: TransferEndpoint.Endpoint,
  kind: Kind,
  /** Checksum algorithm for verification; SHA-256 by default. */
  algorithm: Schema.optional(Schema.Literal(...(Object.keys(Checksum.algorithms) as Array<Checksum.Algorithm>))),
  /** What the source is known to hold (the ops-db's checksum), so the source need not be re-read. */
  expected: Schema.optional(Schema.Union(Checksum.Checksum, Manifest)),
  /** Cap on the rate, in bytes per second (per-route bandwidth limits, DESIGN §5). */
  bandwidthLimit: Schema.optional(Schema.Number.pipe(Schema.positive())),
  /** Keep and reuse partial data of an interrupted attempt, where the tool can; default true. */
  resume: Schema.optional(Schema.Boolean)
})
/** One transfer. */
export type Request = typeof Request.Type

/** How far a transfer is: bytes done, rate in bytes per second, percent when the total is known. */
export const Progress = Schema.Struct({
  bytes: Schema.Number,
  totalBytes: Schema.optional(Schema.Number),
  percent: Schema.optional(Schema.Number),
  rate: Schema.Number,
  file: Schema.optional(Schema.String)
})
/** How far a transfer is. */
export type Progress = typeof Progress.Type

/** The outcome of a transfer, as a DataTransfer row records it. */
export const Result = Schema.Struct({
  adapter: Schema.String,
  kind: Kind,
  /** Bytes of data now at the destination (all files of the transfer). */
  bytes: Schema.Number,
  /** Bytes the last attempt reported sending; less than `bytes` after a resume or a delta. */
  bytesSent: Schema.Number,
  /** Bytes reused from partial data of an earlier attempt, when the tool reports it. */
  resumedBytes: Schema.Number,
  files: Schema.Number,
  durationMs: Schema.Number,
  /** Bytes per second over the whole call, verification and retries included. */
  throughput: Schema.Number,
  attempts: Schema.Number,
  /** True when the destination's checksums were computed by us and matched. */
  verified: Schema.Boolean,
  /** The file's checksum, for `kind: "file"` when verified. */
  checksum: Schema.optional(Checksum.Checksum),
  manifest: Schema.optional(Manifest)
})
/** The outcome of a transfer. */
export type Result = typeof Result.Type

/** What the stream of a transfer carries, ending with exactly one `Completed` on success. */
export type Event =
  | ({ readonly _tag: "Progress"; readonly attempt: number } & Progress)
  | { readonly _tag: "Retrying"; readonly attempt: number; readonly delayMs: number; readonly error: TransferError.TransferError }
  | { readonly _tag: "Verifying"; readonly attempt: number }
  | { readonly _tag: "Completed"; readonly result: Result }

/** What an adapter can do, declared rather than discovered by failure. */
export interface Capabilities {
  /** Reuses partial data of an interrupted attempt. */
  readonly resume: boolean
  /** Accepts `Ssh` endpoints (otherwise `Local` only). */
  readonly remote: boolean
  readonly directories: boolean
  readonly bandwidthLimit: boolean
}

/** Total bytes and number of files at an endpoint. */
export interface Size {
  readonly bytes: number
  readonly files: number
}

/** What `copy` receives: the request plus what the service learnt before the copy. */
export interface CopyRequest extends Request {
  readonly totalBytes: number
  readonly files: number
  readonly attempt: number
}

/** What one copy attempt reports. */
export interface Copied {
  readonly bytesSent: number
  readonly resumedBytes?: number
  /** Checksums of the source computed while copying, so verification need not re-read it. */
  readonly sourceManifest?: Manifest
}

/**
 * The few primitives an integrator implements. Failure rules: `size` and `manifest` of a
 * missing endpoint fail with `SourceNotFound`; `remove` of a missing endpoint succeeds; `copy`
 * must write atomically per file (temporary name, then rename) and may leave partial data only
 * where its own resume will find it.
 */
export interface Minimal {
  readonly name: string
  readonly capabilities: Capabilities
  readonly size: (endpoint: TransferEndpoint.Endpoint, kind: Kind) => Effect.Effect<Size, TransferError.TransferError>
  readonly copy: (
    request: CopyRequest,
    report: (progress: Progress) => Effect.Effect<void>
  ) => Effect.Effect<Copied, TransferError.TransferError>
  readonly manifest: (
    endpoint: TransferEndpoint.Endpoint,
    kind: Kind,
    algorithm: Checksum.Algorithm
  ) => Effect.Effect<Manifest, TransferError.TransferError>
  readonly remove: (endpoint: TransferEndpoint.Endpoint, kind: Kind) => Effect.Effect<void, TransferError.TransferError>
}

/** Retries of retryable failures: `times` retries, delay min(cap, base·factorⁿ) with jitter. */
export interface RetryPolicy {
  readonly times: number
  readonly base: Duration.DurationInput
  readonly cap: Duration.DurationInput
  readonly factor?: number
}

/** Five retries from 2 s, doubling, capped at 5 minutes: rides out link outages, no storms. */
export const defaultRetry: RetryPolicy = { times: 5, base: "2 seconds", cap: "5 minutes", factor: 2 }

/** No retries, for callers (a job engine, a test) that retry themselves. */
export const noRetry: RetryPolicy = { times: 0, base: 0, cap: 0 }

/**
 * The deadline of one attempt, `base + bytes / minBytesPerSecond`, so a 50 GB package gets
 * hours and a small file minutes: a stalled transfer fails as `Timeout` instead of hanging.
 */
export interface TimeoutPolicy {
  readonly base: Duration.DurationInput
  readonly minBytesPerSecond: number
}

/** 10 minutes plus 1 MB/s: generous for a 200-500 ms round trip over a lossy link. */
export const defaultTimeout: TimeoutPolicy = { base: "10 minutes", minBytesPerSecond: 1_000_000 }

/** The deadline for one attempt moving `bytes`. */
export const deadlineFor = (bytes: number, policy: TimeoutPolicy = defaultTimeout): Duration.Duration =>
  Duration.sum(Duration.decode(policy.base), Duration.millis(Math.ceil((bytes / policy.minBytesPerSecond) * 1000)))

/**
 * The delay before retry number `retry` (1-based): exponential, jittered to between half and
 * all of it so workers that failed together do not retry together, never above the cap.
 */
export const backoff = (policy: RetryPolicy, retry: number, unit: number): Duration.Duration =>
  Backoff.delayFor({ base: policy.base, cap: policy.cap, factor: policy.factor }, retry, unit)

/** Per-call options of the full service. */
export interface CallOptions {
  readonly retry?: RetryPolicy
  /** Verify the destination's checksums (default true). */
  readonly verify?: boolean
}

/** Options of `make`, the defaults for every call. */
export interface Options extends CallOptions {
  readonly timeout?: TimeoutPolicy
}

/** The full transfer service every caller uses. */
export interface Service {
  readonly name: string
  readonly capabilities: Capabilities
  /** Runs a transfer, emitting progress, retries and finally `Completed`; interrupting stops the tool. */
  readonly stream: (request: Request, options?: CallOptions) => Stream.Stream<Event, TransferError.TransferError>
  /** Runs a transfer to its result. */
  readonly transfer: (request: Request, options?: CallOptions) => Effect.Effect<Result, TransferError.TransferError>
  /** Checks the destination against the source (or `expected`) now, without copying. */
  readonly verify: (request: Request) => Effect.Effect<Manifest, TransferError.TransferError>
}

/** The service tag; a concrete adapter may also provide its own. */
export class TransferAdapter extends Context.Tag("@ccat/core/TransferAdapter")<TransferAdapter, Service>() {}

/** Paths whose entries differ between what the source holds and what the destination holds. */
export const compare = (source: Manifest, destination: Manifest): ReadonlyArray<string> =>
  Object.keys(source).filter((k) => {
    const d = destination[k]
    const s = source[k]!
    return d === undefined || d.size !== s.size || d.checksum !== s.checksum
  })

const expectedManifest = (request: Request): Manifest | undefined =>
  request.expected === undefined
    ? undefined
    : typeof request.expected === "string"
      ? { [fileKey]: { size: -1, checksum: request.expected } }
      : request.expected

/** Entries compared on checksum only where the expected size is unknown (-1). */
const compareExpected = (expected: Manifest, actual: Manifest): ReadonlyArray<string> =>
  Object.keys(expected).filter((k) => {
    const a = actual[k]
    const e = expected[k]!
    return a === undefined || a.checksum !== e.checksum || (e.size >= 0 && a.size !== e.size)
  })

const sum = (m: Manifest): number => Object.values(m).reduce((n, e) => n + e.size, 0)

const sub = (endpoint: TransferEndpoint.Endpoint, key: string): TransferEndpoint.Endpoint =>
  key === fileKey ? endpoint : TransferEndpoint.withPath(endpoint, `${endpoint.path}/${key}`)

/** Lifts a minimal adapter into the full service: verification, deadline, retries, stream. */
export const make = (minimal: Minimal, options: Options = {}): Service => {
  const fail = (reason: TransferError.Reason, detail: string, extra?: { retryable?: boolean }) =>
    Effect.fail(TransferError.make(minimal.name, reason, detail, extra))

  const check = (request: Request): Effect.Effect<void, TransferError.TransferError> => {
    const remote = request.source._tag === "Ssh" || request.destination._tag === "Ssh"
    if (remote && !minimal.capabilities.remote) return fail("Unsupported", `${minimal.name} reaches local paths only`)
    if (request.kind === "directory" && !minimal.capabilities.directories) return fail("Unsupported", `${minimal.name} moves single files only`)
    if (request.source._tag === "Ssh" && request.destination._tag === "Ssh") {
      return fail("Unsupported", "both ends remote: run the transfer at one of the two sites")
    }
    if (request.kind === "directory" && typeof request.expected === "string") {
      return fail("InvalidRequest", "a directory transfer expects a manifest, not a single checksum")
    }
    return Effect.void
  }

  /** Removes the destination files that failed verification, so no bad copy stays behind. */
  const removeBad = (request: Request, bad: ReadonlyArray<string>) =>
    Effect.forEach(bad, (k) => minimal.remove(sub(request.destination, k), "file"), { discard: true, concurrency: 4 }).pipe(Effect.ignore)

  const verifyNow = Effect.fn("TransferAdapter.verify")(function* (request: Request, copied: Copied | undefined, cleanup: boolean) {
    const algorithm = request.algorithm ?? Checksum.defaultAlgorithm
    const expected = expectedManifest(request)
    const sourceManifest = (): Effect.Effect<Manifest, TransferError.TransferError> =>
      copied?.sourceManifest !== undefined
        ? Effect.succeed(copied.sourceManifest)
        : minimal.manifest(request.source, request.kind, algorithm).pipe(
            Effect.catchIf(
              (e) => e.reason === "SourceNotFound",
              (e) => Effect.fail(TransferError.make(minimal.name, "SourceVanished", `source vanished before verification: ${e.detail}`))
            )
          )
    const [reference, destination] = yield* Effect.all(
      [expected !== undefined ? Effect.succeed(expected) : sourceManifest(), minimal.manifest(request.destination, request.kind, algorithm)],
      { concurrency: 2 }
    )
    const bad = expected !== undefined ? compareExpected(reference, destination) : compare(reference, destination)
    if (bad.length === 0) return destination
    if (cleanup) yield* removeBad(request, bad)
    const list = `${bad.slice(0, 5).join(", ")}${bad.length > 5 ? ` and ${bad.length - 5} more` : ""}`
    if (expected !== undefined) {
      const actualSource = yield* sourceManifest()
      const sourceBad = compareExpected(expected, actualSource)
      if (sourceBad.length > 0) {
        return yield* fail("SourceCorrupt", `the source differs from the expected checksums: ${sourceBad.slice(0, 5).join(", ")}`)
      }
    }
    return yield* fail("ChecksumMismatch", `destination differs from source: ${list}`)
  })

  const run = (request: Request, call: CallOptions, emit: (e: Event) => Effect.Effect<void>) =>
    Effect.gen(function* () {
      const retry = call.retry ?? options.retry ?? defaultRetry
      const verify = call.verify ?? options.verify ?? true
      const started = yield* Clock.currentTimeMillis
      yield* check(request)
      const size = yield* minimal.size(request.source, request.kind)
      const deadline = deadlineFor(size.bytes, options.timeout)
      let attempt = 0
      for (;;) {
        attempt++
        const current = attempt
        const exit = yield* Effect.exit(
          Effect.gen(function* () {
            const copied = yield* minimal
              .copy({ ...request, totalBytes: size.bytes, files: size.files, attempt: current }, (p) => emit({ _tag: "Progress", attempt: current, ...p }))
              .pipe(
                Effect.timeoutFail({
                  duration: deadline,
                  onTimeout: () => TransferError.make(minimal.name, "Timeout", `no completion within ${Duration.format(deadline)}`)
                })
              )
            if (!verify) return { copied, manifest: undefined }
            yield* emit({ _tag: "Verifying", attempt: current })
            const manifest = yield* verifyNow(request, copied, true)
            return { copied, manifest }
          })
        )
        if (Exit.isSuccess(exit)) {
          const { copied, manifest } = exit.value
          const ended = yield* Clock.currentTimeMillis
          const durationMs = Math.max(1, ended - started)
          const bytes = manifest === undefined ? size.bytes : sum(manifest)
          const result: Result = {
            adapter: minimal.name,
            kind: request.kind,
            bytes,
            bytesSent: copied.bytesSent,
            resumedBytes: copied.resumedBytes ?? 0,
            files: manifest === undefined ? size.files : Object.keys(manifest).length,
            durationMs,
            throughput: (bytes * 1000) / durationMs,
            attempts: attempt,
            verified: manifest !== undefined,
            ...(manifest !== undefined && request.kind === "file" && manifest[fileKey] !== undefined ? { checksum: manifest[fileKey].checksum } : {}),
            ...(manifest === undefined ? {} : { manifest })
          }
          return result
        }
        const failure = Cause.failureOption(exit.cause)
        const e = Option.getOrUndefined(failure)
        if (e === undefined || !e.retryable || attempt > retry.times) return yield* Effect.failCause(exit.cause)
        const delay = backoff(retry, attempt, yield* Random.next)
        yield* Effect.logWarning(`transfer attempt ${attempt} failed, retrying in ${Duration.format(delay)}: ${e.message}`)
        yield* emit({ _tag: "Retrying", attempt, delayMs: Duration.toMillis(delay), error: e })
        yield* Effect.sleep(delay)
      }
    }).pipe(
      Effect.withSpan(`TransferAdapter.transfer`, {
        attributes: {
          adapter: minimal.name,
          kind: request.kind,
          source: TransferEndpoint.format(request.source),
          destination: TransferEndpoint.format(request.destination)
        }
      })
    )

  const stream = (request: Request, call: CallOptions = {}): Stream.Stream<Event, TransferError.TransferError> =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        const queue = yield* Queue.unbounded<Take.Take<Event, TransferError.TransferError>>()
        yield* run(request, call, (e) => Queue.offer(queue, Take.of(e))).pipe(
          Effect.onExit((exit) =>
            Exit.isSuccess(exit)
              ? Queue.offerAll(queue, [Take.of<Event>({ _tag: "Completed", result: exit.value }), Take.end])
              : Queue.offer(queue, Take.failCause(exit.cause))
          ),
          Effect.forkScoped
        )
        return Stream.fromQueue(queue).pipe(Stream.flattenTake)
      })
    )

  return {
    name: minimal.name,
    capabilities: minimal.capabilities,
    stream,
    transfer: (request, call = {}) => run(request, call, () => Effect.void),
    verify: (request) => check(request).pipe(Effect.zipRight(verifyNow(request, undefined, false)))
  }
}

/** A progress record from bytes done, total and elapsed time. */
export const progressOf = (bytes: number, totalBytes: number | undefined, elapsedMs: number, file?: string): Progress => ({
  bytes,
  rate: elapsedMs > 0 ? (bytes * 1000) / elapsedMs : 0,
  ...(totalBytes === undefined ? {} : { totalBytes, percent: totalBytes === 0 ? 100 : Math.min(100, (bytes * 100) / totalBytes) }),
  ...(file === undefined ? {} : { file })
})
