/**
 * The client for code that does not use Effect: `const ccat = await createClient({ baseUrl,
 * token, outboxDir })`, then plain Promises. Failures reject with the contract's own typed
 * errors (each an `Error` with a `_tag`), not with an Effect wrapper.
 */
import type { DataProductsApi, Ids, ObservationsApi } from "@ccat/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as CcatClient from "./CcatClient.js"
import * as FileDownload from "./FileDownload.js"
import * as PackageDownload from "./PackageDownload.js"
import * as FilingBatches from "./FilingBatches.js"
import * as FilingOutbox from "./FilingOutbox.js"
import type * as Outbox from "./Outbox.js"
import type * as RetryPolicy from "./RetryPolicy.js"
import * as Staging from "./Staging.js"

/** Where the server is, how to authenticate, and where the outbox lives if there is one. */
export interface ClientOptions {
  /** The server's base URL, without `/api/v1`. */
  readonly baseUrl: string
  /** A bearer API token, as `ccat token create` printed it. */
  readonly token?: string | undefined
  /** Backoff of retried calls (transient failures of idempotent calls); `false` for none. */
  readonly retry?: RetryPolicy.Options | false | undefined
  /** With a folder, filings go through a durable outbox there; without, they are sent at once. */
  readonly outboxDir?: string | undefined
  /** Backoff of outbox deliveries (the outbox never gives up on transient failures). */
  readonly outboxRetry?: RetryPolicy.Options | undefined
  /** One delivery attempt longer than this (milliseconds, default 30 000) is retried; raise it for big batches. */
  readonly outboxAttemptTimeoutMs?: number | undefined
  /** How long to wait for another process holding the outbox (milliseconds, default 0: fail at once). */
  readonly outboxLockWaitMs?: number | undefined
  /** An escape hatch: adjust the `HttpClient` under the contract. */
  readonly transformClient?: ((client: HttpClient.HttpClient) => HttpClient.HttpClient) | undefined
}

/** What a client method answers (the contract's success, not the `withResponse` tuple). */
type Answer<F> = F extends (request: infer _Q) => Effect.Effect<infer A, infer _E, infer _R>
  ? Exclude<A, readonly [unknown, HttpClientResponse.HttpClientResponse]>
  : never

type Promised<F> = F extends (request: infer Q) => Effect.Effect<infer _A, infer _E, infer _R> ? (request: Q) => Promise<Answer<F>> : never

/** Every endpoint of the contract as a Promise-returning function, grouped as the contract groups them. */
export type PromiseApi = {
  readonly [G in keyof CcatClient.Client]: { readonly [E in keyof CcatClient.Client[G]]: Promised<CcatClient.Client[G][E]> }
}

/** The outbox as seen from Promise code. */
export interface OutboxHandle {
  readonly directory: string
  /** Filings not yet confirmed by the server. */
  readonly pending: () => Promise<number>
  readonly status: () => Promise<Outbox.Status>
  /** Filings the server refused for good, with its reasons. */
  readonly deadLetters: () => Promise<ReadonlyArray<Outbox.DeadLetter<FilingOutbox.StoredCall>>>
  /** Resolves `true` once nothing is pending, `false` if `timeoutMs` passed first. */
  readonly flush: (timeoutMs?: number) => Promise<boolean>
  /** Retries now instead of waiting out the current backoff. */
  readonly wake: () => Promise<void>
}

/** What `file` answers: sent now (with the server's answer) or queued durably in the outbox. */
export type Filed<A> =
  | { readonly delivery: "sent"; readonly result: A }
  | { readonly delivery: "queued"; readonly entry: Outbox.Entry }

/** The Promise client. */
export interface Ccat {
  /** Every endpoint, called at once (with retries of transient failures where safe). */
  readonly api: PromiseApi
  /** The server's health: version, database and topology. */
  readonly health: () => Promise<Answer<CcatClient.Client["system"]["health"]>>
  /**
   * Files through the outbox when there is one (resolves once the filing is on disk), else sends
   * it at once. Works for any endpoint of the contract; filing endpoints are the point.
   */
  readonly file: <G extends FilingOutbox.Group, E extends FilingOutbox.Endpoint<G>>(
    group: G,
    endpoint: E,
    request: FilingOutbox.Request<G, E>,
    options?: { readonly key?: string | undefined }
  ) => Promise<Filed<unknown>>
  /**
   * Files an ExecutedObsUnit with none, some or all of its RawDataFiles (ids are the instrument's
   * UUIDs, so repeating it is safe). With an outbox it resolves once the filing is on disk and
   * is delivered in order; without one it is sent at once, retrying transient failures. Any
   * number of files: more than a request takes go in batches (see `FilingBatches`).
   */
  readonly fileObservation: (
    observation: ObservationsApi.FileObservation,
    options?: { readonly key?: string | undefined }
  ) => Promise<Filed<Answer<CcatClient.Client["observations"]["file"]>>>
  /** Adds files to an observation filed before; through the outbox they stay behind it. */
  readonly addFiles: (
    observationId: string,
    files: typeof ObservationsApi.AddFiles.Type,
    options?: { readonly key?: string | undefined }
  ) => Promise<Filed<Answer<CcatClient.Client["observations"]["addFiles"]>>>
  /** Closes an observation: its end time, final status and quality. */
  readonly closeObservation: (
    observationId: string,
    close: typeof ObservationsApi.CloseObservation.Type,
    options?: { readonly key?: string | undefined }
  ) => Promise<Filed<Answer<CcatClient.Client["observations"]["close"]>>>
  /**
   * Files a processed DataProduct a pipeline wrote at a PROCESSING location, with its files and
   * provenance (the observations, packages or products it was made from, the pipeline and its
   * version); it is then packaged and archived like raw data. Sent at once with an
   * `Idempotency-Key` (the given one, or a new one), so a retried call never files twice; the
   * product's own UUID makes repeating it later safe too. Resolves with the stored product.
   */
  readonly fileDataProduct: (
    product: DataProductsApi.FileDataProduct,
    options?: { readonly key?: string | undefined }
  ) => Promise<Answer<CcatClient.Client["dataProducts"]["file"]>>
  /**
   * Waits for a staging request (made with `api.staging.create`) to complete, polling with
   * backoff, and resolves with its files and their absolute local paths. Rejects with a
   * `StagingError` (`reason` `Failed` with the server's reason, or `TimedOut`) or the contract's
   * `NotFound`.
   */
  readonly waitForStaging: (requestId: string, options?: WaitForStagingOptions) => Promise<Staging.Staged>
  /**
   * Streams one raw file straight from the archive to `destination`, verified against its filed
   * checksum (no staging); rejects with a `DownloadError` and leaves nothing at the path.
   */
  readonly downloadFile: (fileId: string, destination: string) => Promise<FileDownload.Downloaded>
  /**
   * Streams one package's whole tar straight from the archive to `destination`, verified against
   * the package's checksum (no staging); rejects with a `PackageDownloadError` and leaves nothing.
   */
  readonly downloadPackage: (packageId: string, destination: string) => Promise<PackageDownload.Downloaded>
  /** Stops delivering, releases the outbox's lock and frees the client; queued filings stay on disk. */
  readonly close: () => Promise<void>
}

/** How `waitForStaging` waits, in milliseconds for plain JavaScript. */
export interface WaitForStagingOptions {
  /** Called after every poll with the request's status. */
  readonly onProgress?: ((progress: Staging.Progress) => void) | undefined
  /** Reject with `StagingError` `TimedOut` after this many milliseconds (default: no limit). */
  readonly timeoutMs?: number | undefined
  /** The first pause between polls (default 1000); each next one is 1.5 times longer. */
  readonly pollBaseMs?: number | undefined
  /** The longest pause between polls (default 30 000). */
  readonly pollCapMs?: number | undefined
}

const queued = (entry: Outbox.Entry) => ({ delivery: "queued" as const, entry })
const sent = <A>(result: A) => ({ delivery: "sent" as const, result })

const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromiseExit(effect).then((exit) => {
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  })

/** Opens a client; with `outboxDir`, the outbox is locked and starts delivering what waits in it. */
export async function createClient(
  options: ClientOptions & { readonly outboxDir: string }
): Promise<Ccat & { readonly outbox: OutboxHandle }>
/** Opens a client without an outbox: filings are sent at once. */
export async function createClient(options: ClientOptions): Promise<Ccat & { readonly outbox?: OutboxHandle | undefined }>
export async function createClient(options: ClientOptions): Promise<Ccat & { readonly outbox?: OutboxHandle | undefined }> {
  const scope = Effect.runSync(Scope.make())
  const inScope = <A, E>(effect: Effect.Effect<A, E, Scope.Scope | HttpClient.HttpClient>) =>
    run(effect.pipe(Scope.extend(scope), Effect.provide(FetchHttpClient.layer)))
  const clientOptions: CcatClient.Options = {
    baseUrl: options.baseUrl,
    token: options.token,
    retry: options.retry,
    transformClient: options.transformClient
  }
  try {
    const client = await inScope(CcatClient.make(clientOptions))
    const filing = options.outboxDir === undefined ? undefined : await inScope(FilingOutbox.make({
      directory: options.outboxDir,
      client: clientOptions,
      retry: options.outboxRetry,
      attemptTimeout: options.outboxAttemptTimeoutMs === undefined ? undefined : `${options.outboxAttemptTimeoutMs} millis`,
      waitForLock: options.outboxLockWaitMs === undefined ? undefined : `${options.outboxLockWaitMs} millis`
    }))
    const api = Object.fromEntries(
      Object.entries(client).map(([group, methods]) => [
        group,
        Object.fromEntries(
          Object.entries(methods as Record<string, (r: unknown) => Effect.Effect<unknown, unknown>>).map(([name, method]) => [
            name,
            (request: unknown) => run(method(request))
          ])
        )
      ])
    ) as unknown as PromiseApi
    const outbox: OutboxHandle | undefined = filing === undefined ? undefined : {
      directory: filing.outbox.directory,
      pending: () => run(filing.outbox.pending),
      status: () => run(filing.outbox.status),
      deadLetters: () => run(filing.outbox.deadLetters),
      flush: (timeoutMs) => run(filing.outbox.flush(timeoutMs === undefined ? undefined : `${timeoutMs} millis`)),
      wake: () => run(filing.outbox.wake)
    }
    let closed: Promise<void> | undefined
    return {
      api,
      health: () => run(client.system.health()) as Promise<Answer<CcatClient.Client["system"]["health"]>>,
      file: (group, endpoint, request, o) =>
        filing !== undefined
          ? run(Effect.map(filing.file(group, endpoint, request, o), (entry) => ({ delivery: "queued" as const, entry })))
          : run(Effect.map(
            (client as unknown as Record<string, Record<string, (r: unknown) => Effect.Effect<unknown, unknown>>>)[group]![endpoint]!(
              request
            ),
            (result) => ({ delivery: "sent" as const, result })
          )),
      fileObservation: (observation, o) =>
        filing !== undefined
          ? run(Effect.map(filing.fileObservation(observation, o), queued))
          : run(Effect.map(FilingBatches.fileObservation(client, observation), sent)),
      addFiles: (id, files, o) =>
        filing !== undefined
          ? run(Effect.map(filing.addFiles(id, files, o), queued))
          : run(Effect.map(
            CcatClient.idempotent(randomUUID())(
              client.observations.addFiles({ path: { id: id as Ids.ExecutedObsUnitId }, payload: files })
            ),
            sent
          )),
      closeObservation: (id, close, o) =>
        filing !== undefined
          ? run(Effect.map(filing.closeObservation(id, close, o), queued))
          : run(Effect.map(
            CcatClient.idempotent(randomUUID())(client.observations.close({ path: { id: id as Ids.ExecutedObsUnitId }, payload: close })),
            sent
          )),
      fileDataProduct: (product, o) =>
        run(CcatClient.idempotent(o?.key ?? randomUUID())(client.dataProducts.file({ payload: product }))) as Promise<
          Answer<CcatClient.Client["dataProducts"]["file"]>
        >,
      waitForStaging: (requestId, o = {}) =>
        run(
          Staging.waitForStaging(requestId, {
            onProgress: o.onProgress,
            timeout: o.timeoutMs === undefined ? undefined : `${o.timeoutMs} millis`,
            pollBase: o.pollBaseMs === undefined ? undefined : `${o.pollBaseMs} millis`,
            pollCap: o.pollCapMs === undefined ? undefined : `${o.pollCapMs} millis`
          }).pipe(Effect.provideService(CcatClient.CcatClient, client))
        ),
      downloadFile: (fileId, destination) =>
        run(FileDownload.downloadFile(clientOptions, fileId, destination).pipe(Effect.provide(FetchHttpClient.layer))),
      downloadPackage: (packageId, destination) =>
        run(PackageDownload.downloadPackage(clientOptions, packageId, destination).pipe(Effect.provide(FetchHttpClient.layer))),
      outbox,
      close: () => (closed ??= Effect.runPromise(Scope.close(scope, Exit.void)))
    }
  } catch (e) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw e
  }
}
