/**
 * The reference server's HTTP side: the API contract implemented by its groups, the OpenAPI
 * document at `/api/v1/openapi.json` and a readable page of it at `/api/v1/docs`, the IVOA TAP
 * service at `/tap`, served by
 * Node's HTTP server with a limit on request bodies.
 */
import { Api } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { AuthenticationLive } from "./auth/Authentication.js"
import * as BodyLimit from "./http/BodyLimit.js"
import * as Idempotency from "./http/Idempotency.js"
import * as IdempotencyLive from "./http/IdempotencyLive.js"
import * as DocsPage from "./http/DocsPage.js"
import * as WebUi from "./http/WebUi.js"
import { AdminHttpLive } from "./http/AdminHttp.js"
import { CatalogHttpLive } from "./http/CatalogHttp.js"
import { DataProductsHttpLive } from "./http/DataProductsHttp.js"
import { FilesHttpLive } from "./http/FilesHttp.js"
import { IntegrityHttpLive } from "./http/IntegrityHttp.js"
import { LocationsHttpLive } from "./http/LocationsHttp.js"
import { ObservationsHttpLive } from "./http/ObservationsHttp.js"
import { OperationsHttpLive } from "./http/OperationsHttp.js"
import { PackagesHttpLive } from "./http/PackagesHttp.js"
import { StagingHttpLive } from "./http/StagingHttp.js"
import { StatusHttpLive } from "./http/StatusHttp.js"
import { TokensHttpLive } from "./http/TokensHttp.js"
import { TransfersHttpLive } from "./http/TransfersHttp.js"
import { SystemHttpLive } from "./http/SystemHttp.js"
import * as MetricsHttp from "./observability/MetricsHttp.js"
import * as ObsCorePublisher from "./ObsCorePublisher.js"
import * as RelayReference from "./relay/Reference.js"
import * as ScienceHttp from "./science/ScienceHttp.js"
import { ServerConfig } from "./ServerConfig.js"
import * as TapHttp from "./tap/TapHttp.js"

/** The largest request body accepted, in bytes: ample for a batch of 10,000 files. */
export const maxBodyBytes = 8 * 1024 * 1024

/** Every group of the API, implemented. */
export const ApiLive = HttpApiBuilder.api(Api.Api).pipe(
  Layer.provide([
    SystemHttpLive,
    ObservationsHttpLive,
    FilesHttpLive,
    PackagesHttpLive,
    TransfersHttpLive,
    LocationsHttpLive,
    StagingHttpLive,
    OperationsHttpLive,
    StatusHttpLive,
    IntegrityHttpLive,
    TokensHttpLive,
    AdminHttpLive,
    CatalogHttpLive,
    DataProductsHttpLive
  ]),
  Layer.provide(AuthenticationLive)
)

/**
 * A Node HTTP server that answers 503 (with Retry-After) to requests no application handles
 * yet. The port opens before the API's handler is attached, and Node drops a request that finds
 * no `request` listener, leaving its client waiting forever; starting (and stopping) servers
 * answer at once instead, which clients and load balancers retry.
 */
export const createAnsweringServer = (): Server => {
  const server = createServer()
  const early = (_req: IncomingMessage, res: ServerResponse) => {
    if (server.listenerCount("request") > 1) return
    res.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
    res.end(JSON.stringify({ _tag: "NotReady", reason: "the server is starting or stopping; retry shortly" }))
  }
  server.on("request", early)
  return server
}

/** Node's HTTP server listening on the configured host and port. */
export const listen = Layer.unwrapEffect(
  Effect.map(ServerConfig, (config) => NodeHttpServer.layer(createAnsweringServer, { host: config.host, port: config.port }))
)

/**
 * The API and its OpenAPI document, served on whatever `HttpServer` is provided, with
 * `Idempotency-Key` honoured on every POST (records kept for `CCAT_IDEMPOTENCY_RETENTION`) and
 * ObsCore's publisher settings taken from the environment before the first request.
 */
export const layerWith = (options: { readonly maxBodyBytes: number }) =>
  Layer.unwrapEffect(Effect.map(IdempotencyLive.config, (idempotency) =>
    Layer.merge(
      serveWith(options, IdempotencyLive.middleware({ maxBodyBytes: options.maxBodyBytes, retention: idempotency.retention })),
      Layer.scopedDiscard(Idempotency.purgeEvery(IdempotencyLive.table, idempotency.purgeEvery))
    ).pipe(Layer.provideMerge(Layer.effectDiscard(ObsCorePublisher.fromEnvironment)))))

const serveWith = (options: { readonly maxBodyBytes: number }, idempotency: ReturnType<typeof IdempotencyLive.middleware>) =>
  HttpApiBuilder.serve((app) => HttpMiddleware.logger(idempotency(app))).pipe(
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/v1/openapi.json" })),
    Layer.provide(DocsPage.layer),
    Layer.provide(WebUi.layer),
    Layer.provide(MetricsHttp.layer),
    Layer.provide(RelayReference.routeLayer),
    Layer.provide(ScienceHttp.layer),
    Layer.provide(TapHttp.layer),
    Layer.provide(BodyLimit.layer(options.maxBodyBytes)),
    Layer.provide(ApiLive)
  )

/** The API with the default body limit. */
export const layer = layerWith({ maxBodyBytes })
