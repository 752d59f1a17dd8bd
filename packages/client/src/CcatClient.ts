/**
 * The typed client of the CCAT Data Center API, derived from the one contract in core: no
 * route or fetch call is written by hand, so the client cannot drift from the server.
 */
import { Api } from "@ccat/core"
import type * as HttpApi from "@effect/platform/HttpApi"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as RetryPolicy from "./RetryPolicy.js"

/** Where the server is and how to authenticate. */
export interface Options {
  /** The server's base URL, e.g. `https://ccat-dc.example.org` (without `/api/v1`). */
  readonly baseUrl: string
  /** A bearer API token, as `ccat token create` printed it. */
  readonly token?: Redacted.Redacted<string> | string | undefined
  /**
   * Retries of transient failures (network, timeouts, 408, 429, 5xx) for requests that are
   * safe to repeat; on by default, `false` turns them off (the outbox does its own).
   */
  readonly retry?: RetryPolicy.Options | false | undefined
  /** An escape hatch: adjust the `HttpClient` under the contract (proxies, tracing headers, tests). */
  readonly transformClient?: ((client: HttpClient.HttpClient) => HttpClient.HttpClient) | undefined
}

/**
 * The `Idempotency-Key` sent with the calls of a region: one key per logical request, reused by
 * its retries. It marks a POST as safe to repeat, so transient failures of it are retried: the
 * server records the first answer under the key and replays it to a retry without running the
 * request again (and refuses the key reused for another request).
 */
export const currentIdempotencyKey = globalValue(
  Symbol.for("@ccat/client/CcatClient/currentIdempotencyKey"),
  () => FiberRef.unsafeMake<string | undefined>(undefined)
)

/** Runs a call under an idempotency key (see `currentIdempotencyKey`); use a fresh key per request. */
export const idempotent = (key: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(self, currentIdempotencyKey, key)

type Groups = typeof Api.Api extends HttpApi.HttpApi<infer _Id, infer G, infer _E, infer _R> ? G : never
type ApiError = typeof Api.Api extends HttpApi.HttpApi<infer _Id, infer _G, infer E, infer _R> ? E : never

/** The derived client: one method per endpoint of the contract, grouped as the contract groups them. */
export type Client = HttpApiClient.Client<Groups, ApiError, never>

/** Builds the client on the `HttpClient` in context, adding the bearer token to every request. */
export const make = (options: Options): Effect.Effect<Client, never, HttpClient.HttpClient> =>
  HttpApiClient.make(Api.Api, {
    baseUrl: options.baseUrl,
    transformClient: (client) => {
      const authed = options.token === undefined
        ? client
        : HttpClient.mapRequest(
          client,
          HttpClientRequest.bearerToken(typeof options.token === "string" ? options.token : Redacted.value(options.token))
        )
      const keyed = HttpClient.mapRequestEffect(
        authed,
        (request) =>
          Effect.map(
            FiberRef.get(currentIdempotencyKey),
            (key) => key === undefined ? request : HttpClientRequest.setHeader(request, "idempotency-key", key)
          )
      )
      const retried = options.retry === false ? keyed : RetryPolicy.withRetries(options.retry)(keyed)
      return options.transformClient === undefined ? retried : options.transformClient(retried)
    }
  })

/** The client as a service, for Effect programs that take it from context. */
export class CcatClient extends Context.Tag("@ccat/client/CcatClient")<CcatClient, Service>() {}

/** The client as the tag holds it (an interface, so declaration files can name it). */
export interface Service extends Client {}

/** The client on the platform's fetch. */
export const layer = (options: Options): Layer.Layer<CcatClient> =>
  Layer.effect(CcatClient, make(options)).pipe(Layer.provide(FetchHttpClient.layer))
