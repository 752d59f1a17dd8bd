/**
 * The typed client of the CCAT Data Center API, derived from the one contract in core: no
 * route or fetch call is written by hand, so the client cannot drift from the server.
 */
import { Api } from "@ccat/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

/** Where the server is and how to authenticate. */
export interface Options {
  /** The server's base URL, e.g. `https://ccat-dc.example.org` (without `/api/v1`). */
  readonly baseUrl: string
  /** A bearer API token, as `ccat token create` printed it. */
  readonly token?: Redacted.Redacted<string> | string | undefined
}

/** Builds the client on the `HttpClient` in context, adding the bearer token to every request. */
export const make = (options: Options) =>
  HttpApiClient.make(Api.Api, {
    baseUrl: options.baseUrl,
    transformClient: (client) =>
      options.token === undefined
        ? client
        : HttpClient.mapRequest(
          client,
          HttpClientRequest.bearerToken(typeof options.token === "string" ? options.token : Redacted.value(options.token))
        )
  })

/** The client as a service, for Effect programs that take it from context. */
export class CcatClient extends Context.Tag("@ccat/client/CcatClient")<
  CcatClient,
  Effect.Effect.Success<ReturnType<typeof make>>
>() {}

/** The client on the platform's fetch. */
export const layer = (options: Options): Layer.Layer<CcatClient> =>
  Layer.effect(CcatClient, make(options)).pipe(Layer.provide(FetchHttpClient.layer))
