/**
 * Observations of any size. A request takes at most `ObservationsApi.maxFilesPerRequest` files,
 * so a larger observation is filed as: the observation, still open, with its first batch; the
 * other batches as additions, several requests in flight; then its close, when the filing
 * states an end. Every request is idempotent (the instrument's UUIDs, and an `Idempotency-Key`
 * per request), so the whole sequence can be repeated after any failure and stores each file
 * once. An observation that fits in one request is one request, as the caller wrote it.
 */
import { type Ids, ObservationsApi } from "@ccat/core"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as CcatClient from "./CcatClient.js"

/** How the batches go. */
export interface Options {
  /** Files per request (default and most: `ObservationsApi.maxFilesPerRequest`). */
  readonly batchSize?: number | undefined
  /** Additions in flight at once (default 4). */
  readonly concurrency?: number | undefined
}

/** A call of a filing: the request and the endpoint it goes to, in the order they must be sent. */
export type Step =
  | { readonly endpoint: "file"; readonly payload: ObservationsApi.FileObservation }
  | { readonly endpoint: "addFiles"; readonly id: string; readonly payload: typeof ObservationsApi.AddFiles.Type }
  | { readonly endpoint: "close"; readonly id: string; readonly payload: typeof ObservationsApi.CloseObservation.Type }

const batchSizeOf = (options: Options | undefined) => {
  const size = options?.batchSize ?? ObservationsApi.maxFilesPerRequest
  if (!Number.isInteger(size) || size < 1 || size > ObservationsApi.maxFilesPerRequest) {
    throw new RangeError(`batchSize must be a whole number from 1 to ${ObservationsApi.maxFilesPerRequest}, got ${size}`)
  }
  return size
}

/**
 * The requests that file an observation: one when its files fit in a batch; otherwise the open
 * observation with the first batch, one addition per further batch (these may be sent in any
 * order, at once), and the close when the filing states an end (with its status when that is
 * `failed`, else `completed`, and its quality).
 */
export const steps = (observation: ObservationsApi.FileObservation, options?: Options): ReadonlyArray<Step> => {
  const size = batchSizeOf(options)
  const files = observation.files ?? []
  if (files.length <= size) return [{ endpoint: "file", payload: observation }]
  const { endAt, status, ...open } = observation
  const out: Array<Step> = [{
    endpoint: "file",
    payload: { ...open, ...(endAt == null && status !== undefined ? { status } : {}), files: files.slice(0, size) }
  }]
  for (let i = size; i < files.length; i += size) {
    out.push({
      endpoint: "addFiles",
      id: observation.id,
      payload: { sourceLocation: observation.sourceLocation!, files: files.slice(i, i + size) }
    })
  }
  if (endAt != null) {
    out.push({
      endpoint: "close",
      id: observation.id,
      payload: {
        endAt,
        status: status === "failed" ? "failed" : "completed",
        ...(observation.quality !== undefined ? { quality: observation.quality } : {})
      }
    })
  }
  return out
}

/** What a filing answers: the observation as stored, and every file as stored. */
type Filed = typeof ObservationsApi.FiledObservation.Type

/** What one of the client's observation calls may fail with. */
type CallError<K extends "file" | "addFiles" | "close"> = Effect.Effect.Error<ReturnType<CcatClient.Client["observations"][K]>>

/**
 * Files an observation of any number of files through the client (see the module's comment);
 * answers as one filing would: the observation as stored at the end, and every file as stored,
 * in the request's order.
 */
export const fileObservation = (
  client: CcatClient.Client,
  observation: ObservationsApi.FileObservation,
  options?: Options
): Effect.Effect<Filed, CallError<"file"> | CallError<"addFiles"> | CallError<"close">> =>
  Effect.gen(function* () {
    const all = steps(observation, options)
    const keyed = <A, E, R>(call: Effect.Effect<A, E, R>) => CcatClient.idempotent(randomUUID())(call)
    const [first, ...rest] = all
    const filed = yield* keyed(client.observations.file({ payload: (first as Extract<Step, { endpoint: "file" }>).payload }))
    const additions = rest.filter((s): s is Extract<Step, { endpoint: "addFiles" }> => s.endpoint === "addFiles")
    const added = yield* Effect.forEach(
      additions,
      (s) => keyed(client.observations.addFiles({ path: { id: s.id as Ids.ExecutedObsUnitId }, payload: s.payload })),
      { concurrency: options?.concurrency ?? 4 }
    )
    const close = rest.find((s): s is Extract<Step, { endpoint: "close" }> => s.endpoint === "close")
    const closed = close === undefined
      ? filed.observation
      : yield* keyed(client.observations.close({ path: { id: close.id as Ids.ExecutedObsUnitId }, payload: close.payload }))
    return { observation: closed, files: [...filed.files, ...added.flatMap((a) => a.files)] }
  })
