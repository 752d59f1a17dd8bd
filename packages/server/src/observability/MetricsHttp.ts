/**
 * The HTTP side of the metrics: `GET /metrics` in Prometheus text format 0.0.4, unauthenticated
 * like health (operators restrict it at their proxy), and a middleware that counts and times
 * every request by method, route template and status. Routes are the contract's path templates
 * (`/api/v1/packages/{id}`), never raw paths, so ids and scanners' junk cannot multiply series.
 */
import { Api } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"
import { prometheusContentType } from "./Exposition.js"
import * as Metrics from "./Metrics.js"

/** The path the metrics are served at. */
export const path = "/metrics"

/** Requests served, by method, route template and status. */
export const requests = Metric.counter("ccat_http_requests_total", {
  description: "HTTP requests served by this process, per method, route template and status.",
  incremental: true
})

/** Request durations, by method and route template. */
export const requestDuration = Metric.histogram(
  "ccat_http_request_duration_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "Duration of HTTP requests served by this process, per method and route template."
)

const templates = (() => {
  const spec = OpenApi.fromApi(Api.Api)
  const paths = [...Object.keys(spec.paths), path, "/api/v1/docs", "/api/v1/openapi.json"]
  return paths
    .map((t) => {
      const params = (t.match(/\{[^}]+\}/g) ?? []).length
      const source = t.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[^}]+\\?\}/g, "[^/]+")
      return { template: t, params, regex: new RegExp(`^${source}/?$`) }
    })
    // A literal segment wins over a parameter (`/packages/retry` before `/packages/{id}`).
    .sort((a, b) => a.params - b.params || b.template.length - a.template.length)
})()

/** The route template a path belongs to, or `other`. */
export const routeOf = (url: string): string => {
  const p = url.split("?")[0] ?? url
  return templates.find((t) => t.regex.test(p))?.template ?? "other"
}

// The status the server will answer a failure with: an API error is encoded after this middleware
// with the status its schema is annotated with; anything else as the platform answers it (404 for
// no route, 500 for a defect).
const statusOfFailure = (cause: Cause.Cause<unknown>) => {
  const failure = Cause.failureOption(cause)
  const ast = Option.isSome(failure) ? (failure.value as { constructor?: { ast?: AST.AST } })?.constructor?.ast : undefined
  if (ast !== undefined && AST.isTransformation(ast)) return Effect.succeed(HttpApiSchema.getStatusErrorAST(ast))
  return Effect.map(HttpServerError.causeResponse(cause), ([response]) => response.status)
}

/** Counts and times every request (a global middleware of the HTTP API). */
export const requestMetricsLayer = HttpApiBuilder.middleware((app) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const start = performance.now()
    const route = routeOf(request.url)
    return yield* app.pipe(
      Effect.onExit((exit) =>
        Effect.gen(function* () {
          const status = Exit.isSuccess(exit) ? exit.value.status : yield* statusOfFailure(exit.cause)
          const base = [MetricLabel.make("method", request.method), MetricLabel.make("route", route)]
          yield* Effect.all([
            Metric.increment(Metric.taggedWithLabels(requests, [...base, MetricLabel.make("status", String(status))])),
            Metric.update(Metric.taggedWithLabels(requestDuration, base), (performance.now() - start) / 1000)
          ], { discard: true })
        })
      )
    )
  })
)

/** `GET /metrics`: uses the provided `MetricsCollector`, else one of its own on the API's SqlClient. */
export const routeLayer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const provided = yield* Effect.serviceOption(Metrics.MetricsCollector)
    const collector = Option.isSome(provided) ? provided.value : yield* Metrics.make()
    yield* router.get(
      path,
      // A scrape every few seconds would otherwise fill the log with "Sent HTTP response" lines.
      HttpMiddleware.withLoggerDisabled(
        Effect.map(collector.prometheus, (text) => HttpServerResponse.text(text, { contentType: prometheusContentType }))
      )
    )
  })
)

/** `/metrics` and the request metrics: the one layer `HttpServer.layerWith` provides. */
export const layer = Layer.merge(routeLayer, requestMetricsLayer)
