/**
 * The lift of a transfer adapter: how `TransferAdapter.make` turns an adapter's few primitives
 * into the full service (checksum verification done by us at the destination, a size-scaled
 * deadline, retries of retryable failures with backoff, the progress stream), written once for
 * every adapter, with the rules it applies (what counts as a difference, the deadline, the
 * backoff). The contract it implements is `TransferAdapter.ts`, which re-exports the rules.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as Take from "effect/Take"
import * as Backoff from "../Backoff.js"
import * as Checksum from "../Checksum.js"
import type {
  CallOptions,
  Copied,
  Event,
  Manifest,
  Minimal,
  Options,
  Request,
  Result,
  RetryPolicy,
  Service,
  TimeoutPolicy
} from "../TransferAdapter.js"
import * as TransferEndpoint from "../TransferEndpoint.js"
import * as TransferError from "../TransferError.js"

/** The manifest key of a single-file endpoint. */
export const fileKey = "."

/** Five retries from 2 s, doubling, capped at 5 minutes: rides out link outages, no storms. */
export const defaultRetry: RetryPolicy = { times: 5, base: "2 seconds", cap: "5 minutes", factor: 2 }

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
    if (request.kind === "directory" && !minimal.capabilities.directories) {
      return fail("Unsupported", `${minimal.name} moves single files only`)
    }
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
      [
        expected !== undefined ? Effect.succeed(expected) : sourceManifest(),
        minimal.manifest(request.destination, request.kind, algorithm)
      ],
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
              .copy(
                { ...request, totalBytes: size.bytes, files: size.files, attempt: current },
                (p) => emit({ _tag: "Progress", attempt: current, ...p })
              )
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
            ...(manifest !== undefined && request.kind === "file" && manifest[fileKey] !== undefined
              ? { checksum: manifest[fileKey].checksum }
              : {}),
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
