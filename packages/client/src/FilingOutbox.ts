/**
 * Filings made durable: any call of the API contract (in practice filing an observation,
 * adding files to it, closing it) is stored in the outbox with its request in the contract's
 * own encoded form, and replayed through the derived client when the server can take it.
 * Calls to different endpoints share one queue, so an observation is filed before its files.
 */
import { Api, type Ids, type ObservationsApi } from "@ccat/core"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as CcatClient from "./CcatClient.js"
import * as FilingBatches from "./FilingBatches.js"
import * as Outbox from "./Outbox.js"
import type * as RetryPolicy from "./RetryPolicy.js"

/** A call as stored: the endpoint by group and name, and its request encoded by the endpoint's schemas. */
export const StoredCall = Schema.Struct({
  group: Schema.String,
  endpoint: Schema.String,
  request: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

/** The stored form of a call. */
export type StoredCall = typeof StoredCall.Type

/** Groups of the contract. */
export type Group = keyof CcatClient.Client & string

/** Endpoints of a group. */
export type Endpoint<G extends Group> = keyof CcatClient.Client[G] & string

/** The request an endpoint's client method takes. */
export type Request<G extends Group, E extends Endpoint<G>> = CcatClient.Client[G][E] extends (request: infer Q) => unknown ? Q : never

/** How to open the filing outbox. */
export interface Options {
  /** The outbox's folder; one per instrument process is the usual choice. */
  readonly directory: string
  /** Where to deliver and with which token; its `retry` is ignored (the outbox retries itself). */
  readonly client: CcatClient.Options
  readonly retry?: RetryPolicy.Options | undefined
  readonly attemptTimeout?: Outbox.Options<StoredCall, unknown, never>["attemptTimeout"]
  readonly waitForLock?: Outbox.Options<StoredCall, unknown, never>["waitForLock"]
}

/** The filing outbox: `file` queues a call durably; the outbox delivers it. */
export interface FilingOutbox {
  /** Queues a call of the contract; returns once it is on disk. */
  readonly file: <G extends Group, E extends Endpoint<G>>(
    group: G,
    endpoint: E,
    request: Request<G, E>,
    options?: { readonly key?: string | undefined }
  ) => Effect.Effect<Outbox.Entry, Outbox.OutboxError | ParseResult.ParseError>
  /**
   * Queues the filing of an observation (with none, some or all of its files); keyed by its id.
   * One with more files than a request takes is queued as its batches (see `FilingBatches`),
   * all at once and in order; the entry answered is the first.
   */
  readonly fileObservation: (
    observation: ObservationsApi.FileObservation,
    options?: { readonly key?: string | undefined }
  ) => Effect.Effect<Outbox.Entry, Outbox.OutboxError | ParseResult.ParseError>
  /** Queues files added to an observation filed before (the queue keeps them after it). */
  readonly addFiles: (
    id: string,
    files: typeof ObservationsApi.AddFiles.Type,
    options?: { readonly key?: string | undefined }
  ) => Effect.Effect<Outbox.Entry, Outbox.OutboxError | ParseResult.ParseError>
  /** Queues the closing of an observation: its end time, final status and quality. */
  readonly closeObservation: (
    id: string,
    close: typeof ObservationsApi.CloseObservation.Type,
    options?: { readonly key?: string | undefined }
  ) => Effect.Effect<Outbox.Entry, Outbox.OutboxError | ParseResult.ParseError>
  /** Status, pending count, dead letters, flush and wake of the underlying outbox. */
  readonly outbox: Outbox.Outbox<StoredCall>
}

const parts = ["path", "urlParams", "payload", "headers"] as const

const endpointOf = (group: string, endpoint: string): HttpApiEndpoint.HttpApiEndpoint.AnyWithProps | undefined =>
  (Api.Api as unknown as { groups: Record<string, { endpoints: Record<string, HttpApiEndpoint.HttpApiEndpoint.AnyWithProps> }> })
    .groups[group]?.endpoints[endpoint]

const schemaOf = (endpoint: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps, part: typeof parts[number]) =>
  endpoint[`${part}Schema`] as Option.Option<Schema.Schema<unknown, unknown, never>>

/** Encodes a request with the endpoint's schemas, so it can wait on disk as JSON. */
export const encodeCall = (group: string, endpoint: string, request: unknown): Effect.Effect<StoredCall, ParseResult.ParseError> =>
  Effect.gen(function* () {
    const e = endpointOf(group, endpoint)
    if (e === undefined) {
      return yield* Effect.fail(
        new ParseResult.ParseError({
          issue: new ParseResult.Type(StoredCall.ast, { group, endpoint }, `no endpoint ${group}.${endpoint} in the contract`)
        })
      )
    }
    const encoded: Record<string, unknown> = {}
    const given = (request ?? {}) as Record<string, unknown>
    for (const part of parts) {
      const schema = schemaOf(e, part)
      if (Option.isSome(schema) && given[part] !== undefined) encoded[part] = yield* Schema.encodeUnknown(schema.value)(given[part])
    }
    return { group, endpoint, request: encoded }
  })

/** Decodes a stored call back into the request its client method takes. */
export const decodeCall = (call: StoredCall): Effect.Effect<Record<string, unknown>, ParseResult.ParseError> =>
  Effect.gen(function* () {
    const e = endpointOf(call.group, call.endpoint)
    if (e === undefined) {
      return yield* Effect.fail(
        new ParseResult.ParseError({
          issue: new ParseResult.Type(StoredCall.ast, call, `no endpoint ${call.group}.${call.endpoint} in the contract`)
        })
      )
    }
    const decoded: Record<string, unknown> = {}
    for (const part of parts) {
      const schema = schemaOf(e, part)
      if (Option.isSome(schema) && call.request[part] !== undefined) {
        decoded[part] = yield* Schema.decodeUnknown(schema.value)(call.request[part])
      }
    }
    return decoded
  })

/** Opens the filing outbox on the `HttpClient` in context and starts delivering. */
export const make = (options: Options): Effect.Effect<FilingOutbox, Outbox.OutboxError, Scope.Scope | HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const client = yield* CcatClient.make({ ...options.client, retry: false })
    const outbox = yield* Outbox.make({
      directory: options.directory,
      schema: StoredCall,
      retry: options.retry,
      attemptTimeout: options.attemptTimeout,
      waitForLock: options.waitForLock,
      deliver: (call, entry) =>
        decodeCall(call).pipe(
          Effect.flatMap((request) => {
            const method =
              (client as unknown as Record<string, Record<string, (r: unknown) => Effect.Effect<unknown, unknown>>>)[call.group]
                ?.[call.endpoint]
            return method === undefined ? Effect.dieMessage(`no endpoint ${call.group}.${call.endpoint}`) : method(request)
          }),
          // The entry's id marks a redelivery in the server's logs.
          CcatClient.idempotent(entry.id)
        )
    })
    const file: FilingOutbox["file"] = (group, endpoint, request, o) =>
      Effect.flatMap(encodeCall(group, endpoint, request), (call) => outbox.enqueue(call, o))
    return {
      outbox,
      file,
      fileObservation: (observation, o) => {
        const key = o?.key ?? observation.id
        const all = FilingBatches.steps(observation)
        if (all.length === 1) return file("observations", "file", { payload: observation }, { key })
        // Larger than one request: its batches and its close are queued together, in order.
        return Effect.forEach(all, (s) =>
          s.endpoint === "file"
            ? Effect.map(encodeCall("observations", "file", { payload: s.payload }), (item) => ({ item, key }))
            : Effect.map(encodeCall("observations", s.endpoint, { path: { id: s.id }, payload: s.payload }), (item) => ({
              item,
              key: `${key}/${s.endpoint === "close" ? "close" : "files"}`
            }))).pipe(Effect.flatMap(outbox.enqueueAll), Effect.map((entries) => entries[0]!))
      },
      addFiles: (id, files, o) =>
        file("observations", "addFiles", { path: { id: id as Ids.ExecutedObsUnitId }, payload: files }, { key: o?.key ?? `${id}/files` }),
      closeObservation: (id, close, o) =>
        file("observations", "close", { path: { id: id as Ids.ExecutedObsUnitId }, payload: close }, { key: o?.key ?? `${id}/close` })
    }
  })
