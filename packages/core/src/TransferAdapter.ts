/**
 * The TransferAdapter port (DESIGN §6): moves a file or a directory tree from an endpoint at one
 * site to an endpoint at another, reports progress as a Stream, verifies at the destination,
 * resumes where the tool can, and classifies failures as retryable or not.
 *
 * An integrator writes a small `Minimal` adapter (size, copy, manifest, remove); `make` lifts it
 * into the full service, which adds what every adapter needs and none should re-implement:
 * checksum verification done by us at the destination, a size-scaled deadline, and retries of
 * retryable failures with exponential backoff, jitter and a cap. This module is the contract; the
 * lift and the rules it applies are `internal/TransferAdapterLift.ts`.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Checksum from "./Checksum.js"
import * as Lift from "./internal/TransferAdapterLift.js"
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

/** The rules the lift applies (the single-file manifest key, what differs, the deadline, the backoff, their defaults), defined beside it. */
export { backoff, compare, deadlineFor, defaultRetry, defaultTimeout, fileKey } from "./internal/TransferAdapterLift.js"

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

/** Lifts a minimal adapter into the full service: verification, deadline, retries, stream. */
export const make: (minimal: Minimal, options?: Options) => Service = Lift.make

/** A progress record from bytes done, total and elapsed time. */
export const progressOf = (bytes: number, totalBytes: number | undefined, elapsedMs: number, file?: string): Progress => ({
  bytes,
  rate: elapsedMs > 0 ? (bytes * 1000) / elapsedMs : 0,
  ...(totalBytes === undefined ? {} : { totalBytes, percent: totalBytes === 0 ? 100 : Math.min(100, (bytes * 100) / totalBytes) }),
  ...(file === undefined ? {} : { file })
})
