/**
 * The relay's HTTP side: the relay contract (filing as at the main, plus `GET /relay/status`),
 * `Idempotency-Key` on its own records, the body limit, `/metrics` with the backlog, and a JSON
 * 404 for every path it does not serve that says to ask the main.
 */
import { ApiErrors } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as BodyLimit from "../http/BodyLimit.js"
import * as Idempotency from "../http/Idempotency.js"
import type { SyncState } from "./Forwarder.js"
import { RelayApi } from "./RelayApi.js"
import * as RelayAuth from "./RelayAuth.js"
import { ObservationsRelayLive } from "./RelayFiling.js"
import * as RelayStore from "./RelayStore.js"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"

/** The last sync's outcome and the main's URL, for status and metrics. */
export class RelayState
  extends Context.Tag("@ccat/server/relay/RelayState")<RelayState, { readonly mainUrl: string; readonly sync: Ref.Ref<SyncState> }>()
{}

/** Reads the whole status: backlog, reference age, refused filings. */
export const status = Effect.gen(function* () {
  const state = yield* RelayState
  const sync = yield* Ref.get(state.sync)
  const backlog = yield* RelayStore.backlog
  const refused = yield* RelayStore.refused(100)
  return {
    main: state.mainUrl,
    backlog,
    reference: {
      pulledAt: sync.pulledAt?.toISOString() ?? null,
      ageSeconds: sync.pulledAt === undefined ? null : (Date.now() - sync.pulledAt.getTime()) / 1000,
      lastSyncError: sync.lastError ?? null
    },
    refused: refused.map((f) => ({
      id: f.id,
      kind: f.kind,
      observationId: f.observationId,
      accountName: f.accountName,
      acceptedAt: f.acceptedAt.toISOString(),
      refusedAt: f.refusedAt?.toISOString() ?? "",
      status: f.refusedStatus,
      reason: f.refusedReason ?? "",
      payload: f.payload
    }))
  }
}).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e)))

const RelayGroupLive = HttpApiBuilder.group(RelayApi, "relay", (handlers) => handlers.handle("status", () => status))

/** The relay contract implemented, on offline authentication. */
export const ApiLive = HttpApiBuilder.api(RelayApi).pipe(
  Layer.provide([ObservationsRelayLive, RelayGroupLive]),
  Layer.provide(RelayAuth.layer)
)

/** `GET /metrics` of the relay: backlog, oldest age, refused and forwarded counts, reference age (Prometheus text). */
const metricsRoute = HttpApiBuilder.Router.use((router) =>
  Effect.flatMap(Effect.context<SqlClient.SqlClient | RelayState>(), (context) =>
    router.get(
      "/metrics",
      HttpMiddleware.withLoggerDisabled(
        Effect.map(status, (s) =>
          HttpServerResponse.text(
            [
              "# HELP ccat_relay_backlog_filings Filings accepted by the relay and not yet taken by the main.",
              "# TYPE ccat_relay_backlog_filings gauge",
              `ccat_relay_backlog_filings ${s.backlog.pending}`,
              "# HELP ccat_relay_backlog_oldest_age_seconds Age of the oldest filing not yet taken by the main.",
              "# TYPE ccat_relay_backlog_oldest_age_seconds gauge",
              `ccat_relay_backlog_oldest_age_seconds ${s.backlog.oldestPendingAgeSeconds}`,
              "# HELP ccat_relay_refused_filings Filings the main refused, kept at the relay.",
              "# TYPE ccat_relay_refused_filings gauge",
              `ccat_relay_refused_filings ${s.backlog.refused}`,
              "# HELP ccat_relay_forwarded_filings Filings the main took.",
              "# TYPE ccat_relay_forwarded_filings gauge",
              `ccat_relay_forwarded_filings ${s.backlog.forwarded}`,
              "# HELP ccat_relay_reference_age_seconds Age of the reference data and token hashes (-1 before the first pull of this run).",
              "# TYPE ccat_relay_reference_age_seconds gauge",
              `ccat_relay_reference_age_seconds ${s.reference.ageSeconds ?? -1}`,
              ""
            ].join("\n"),
            { contentType: "text/plain; version=0.0.4; charset=utf-8" }
          )).pipe(Effect.provide(context))
      )
    ))
)

const notServedResponse = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const e = new ApiErrors.NotFound({
    entity: "Route",
    id: `${request.method} ${request.url}`,
    message:
      "the relay at the telescope takes filings (POST /api/v1/observations, .../files, .../close) and answers /api/v1/relay/status and /metrics; ask the main for anything else"
  })
  return HttpServerResponse.unsafeJson({ _tag: e._tag, entity: e.entity, id: e.id, message: e.message }, { status: 404 })
})

/** Any path the relay does not serve: a JSON 404 saying so, rather than an empty answer (the router prefers every real route over `*`). */
const notServedRoute = HttpApiBuilder.Router.use((router) => router.all("*", notServedResponse))

/** The relay's HTTP app on whatever `HttpServer` is provided. */
export const layer = (options: { readonly maxBodyBytes: number; readonly retention: Duration.DurationInput }) =>
  Layer.unwrapEffect(
    Effect.map(RelayAuth.CurrentReference, (reference) => {
      const idempotency = Idempotency.middleware({
        table: RelayStore.idempotencyTable,
        retention: options.retention,
        lease: Duration.minutes(2),
        wait: Duration.seconds(30),
        maxBodyBytes: options.maxBodyBytes,
        scopeOf: (request) => RelayAuth.accountScope(reference, request.headers.authorization)
      })
      return HttpApiBuilder.serve((app) => HttpMiddleware.logger(idempotency(app))).pipe(
        Layer.provide(metricsRoute),
        Layer.provide(notServedRoute),
        Layer.provide(BodyLimit.layer(options.maxBodyBytes)),
        Layer.provide(ApiLive)
      )
    })
  )
