/**
 * The reference server's HTTP side: the API contract implemented by its groups, the OpenAPI
 * document at `/api/v1/openapi.json`, served by Node's HTTP server.
 */
import { Api } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { SystemHttpLive } from "./http/SystemHttp.js"
import { ServerConfig } from "./ServerConfig.js"

/** Every group of the API, implemented. */
export const ApiLive = HttpApiBuilder.api(Api.Api).pipe(Layer.provide(SystemHttpLive))

/** Node's HTTP server listening on the configured host and port. */
export const listen = Layer.unwrapEffect(
  Effect.map(ServerConfig, (config) => NodeHttpServer.layer(createServer, { host: config.host, port: config.port }))
)

/** The API and its OpenAPI document, served on whatever `HttpServer` is provided. */
export const layer = HttpApiBuilder.serve(HttpMiddleware.logger).pipe(
  Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/v1/openapi.json" })),
  Layer.provide(ApiLive)
)
