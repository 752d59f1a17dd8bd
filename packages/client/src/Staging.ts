/**
 * Waiting for staged data: a pipeline asks for observations or packages at a PROCESSING location
 * (`client.staging.create`), then `waitForStaging` follows the request until the files are there
 * and hands back where they are. It polls with backoff, so a thousand pipelines waiting for tape
 * recalls do not hammer the server, and turns a failed request into a typed error with the
 * server's reason.
 */
import { Backoff, type Ids, type StagingApi, type Status } from "@ccat/core"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as CcatClient from "./CcatClient.js"

/** Why waiting for a staging request ended without its files. */
export const StagingErrorReason = Schema.Literal("Failed", "TimedOut")
/** Why waiting ended without files. */
export type StagingErrorReason = typeof StagingErrorReason.Type

/**
 * Waiting for a staging request ended without its files: `Failed` when the server failed the
 * request (`message` is its reason: a package that failed, a file that did not match what was
 * filed), `TimedOut` when the caller's timeout passed first (the request goes on; wait again).
 */
export class StagingError extends Schema.TaggedError<StagingError>()("StagingError", {
  reason: StagingErrorReason,
  requestId: Schema.String,
  /** The request's last known status. */
  status: Schema.String,
  message: Schema.String
}) {}

/** What `onProgress` hears after every poll. */
export interface Progress {
  readonly requestId: string
  readonly status: Status.Status
  /** Polls so far, this one included. */
  readonly polls: number
  /** Time since waiting began. */
  readonly elapsed: Duration.Duration
}

/** How to wait. */
export interface WaitOptions {
  /** Called after every poll with the request's status (a pipeline's progress line). */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Give up after this long with `StagingError` `TimedOut` (default: wait as long as it takes). */
  readonly timeout?: Duration.DurationInput | undefined
  /** The first pause between polls (default 1 s); each next one is 1.5 times longer. */
  readonly pollBase?: Duration.DurationInput | undefined
  /** No pause is longer than this (default 30 s), so completion is noticed soon after it happens. */
  readonly pollCap?: Duration.DurationInput | undefined
  /** Files per page when the list is fetched (default 1000, the most the server gives). */
  readonly pageSize?: number | undefined
}

/** A completed request's files and where they are. */
export interface Staged {
  readonly requestId: string
  /** The PROCESSING location's short name. */
  readonly location: string
  /** Until when the files are kept for this request at least. */
  readonly expiresAt: Date | null
  /** Every staged file, in key order, with its relative path, size and checksum. */
  readonly files: ReadonlyArray<StagingApi.StagedFile>
  /** The absolute local paths of the files (empty when the location is not a local disk: use `files[].key`). */
  readonly paths: ReadonlyArray<string>
}

/** What a call of the derived client can fail with. */
type CallError<F> = F extends (...args: Array<any>) => Effect.Effect<infer _A, infer E, infer _R> ? E : never

/**
 * What waiting can fail with: `StagingError`, or what the two calls it makes can fail with (the
 * contract's `NotFound`, `Unauthorized`, ..., a transport or decoding error).
 */
export type WaitError =
  | StagingError
  | CallError<CcatClient.Client["staging"]["get"]>
  | CallError<CcatClient.Client["staging"]["files"]>

/** Every page of a completed request's files. */
const allFiles = (client: CcatClient.Client, id: Ids.StagingRequestId, pageSize: number) =>
  Effect.gen(function* () {
    const files: Array<StagingApi.StagedFile> = []
    let cursor: string | undefined
    let first: StagingApi.StagedFilesPage | undefined
    do {
      const page: StagingApi.StagedFilesPage = yield* client.staging.files({
        path: { id },
        urlParams: { limit: pageSize, ...(cursor === undefined ? {} : { cursor }) }
      })
      first ??= page
      files.push(...page.items)
      cursor = page.nextCursor ?? undefined
    } while (cursor !== undefined)
    return { page: first!, files }
  })

/**
 * Polls the request with backoff until it is `completed` (answers its files and local paths) or
 * `failed` (fails with `StagingError` `Failed` and the server's reason); `timeout` bounds the
 * wait. An unknown request, or one the token may not see, is the contract's `NotFound`.
 */
export const waitForStaging = (requestId: string, options: WaitOptions = {}): Effect.Effect<Staged, WaitError, CcatClient.CcatClient> =>
  Effect.gen(function* () {
    const client = yield* CcatClient.CcatClient
    const id = requestId as Ids.StagingRequestId
    const base = Duration.decode(options.pollBase ?? "1 second")
    const cap = Duration.decode(options.pollCap ?? "30 seconds")
    const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
    const pauses: Backoff.Policy = { base, factor: 1.5, cap, jitter: Backoff.none }
    let polls = 0
    let status: Status.Status = "pending"
    const wait = Effect.gen(function* () {
      while (true) {
        const request = yield* client.staging.get({ path: { id } })
        polls++
        status = request.status
        const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
        options.onProgress?.({ requestId, status, polls, elapsed: Duration.millis(now - started) })
        if (request.status === "failed") {
          return yield* new StagingError({
            reason: "Failed",
            requestId,
            status,
            message: `staging request ${requestId} failed: ${request.errorMessage ?? "no reason recorded"}`
          })
        }
        if (request.status === "completed") {
          const { files, page } = yield* allFiles(client, id, options.pageSize ?? 1000)
          return {
            requestId,
            location: page.location,
            expiresAt: page.expiresAt === null ? null : DateTime.toDate(page.expiresAt),
            files,
            paths: files.flatMap((f) => (f.localPath === null ? [] : [f.localPath]))
          } satisfies Staged
        }
        yield* Effect.sleep(Backoff.delayFor(pauses, polls, 0))
      }
    })
    if (options.timeout === undefined) return yield* wait
    const timeout = Duration.decode(options.timeout)
    return yield* wait.pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new StagingError({
            reason: "TimedOut",
            requestId,
            status,
            message: `staging request ${requestId} is still ${status} after ${Duration.format(timeout)}; it goes on, wait again later`
          })
      })
    )
  }).pipe(Effect.withSpan("Staging.waitForStaging", { attributes: { requestId } }))
