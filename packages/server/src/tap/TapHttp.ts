/**
 * The TAP 1.1 service at `/tap`: synchronous queries at `/tap/sync` (GET or POST), asynchronous
 * UWS jobs at `/tap/async`, and the VOSI endpoints `/tap/availability`, `/tap/capabilities`
 * and `/tap/tables`. Anonymous callers query public data; a bearer token widens what its
 * account may see. The same service at `/tap/auth` asks for credentials with an HTTP Basic
 * challenge, for clients that send a token only when asked (TOPCAT, STILTS). Mounted beside the API on its router, outside the JSON contract, because
 * TAP's parameters, redirects and XML documents are the IVOA's, not the API's.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { version } from "../Version.js"
import { AdqlError } from "./Adql.js"
import * as TapQuery from "./TapQuery.js"
import * as TapRequest from "./TapRequest.js"
import * as UwsHttp from "./UwsHttp.js"
import * as UwsJobs from "./UwsJobs.js"
import * as Vosi from "./Vosi.js"

const landing = (
  base: string
) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CCAT archive TAP service</title></head><body>
<h1>CCAT archive: TAP 1.1</h1>
<p>Query the archive's IVOA ObsCore table <code>ivoa.obscore</code> in ADQL with TOPCAT, pyvo or any TAP client at <code>${base}</code>.</p>
<ul><li><a href="${base}/capabilities">capabilities</a></li><li><a href="${base}/tables">tables</a></li><li><a href="${base}/availability">availability</a></li></ul>
</body></html>`

/** The TAP routes, with the given limits (the environment's by default). */
export const layerWith = (options: { readonly limits?: TapQuery.TapLimits; readonly uws?: UwsJobs.UwsLimits } = {}) =>
  HttpApiBuilder.Router.use((router) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const limits = options.limits ?? (yield* TapQuery.limitsConfig.pipe(Effect.orDie))
      const jobs = yield* UwsJobs.make(options.uws ?? UwsJobs.defaultLimits, limits).pipe(Effect.provideService(SqlClient.SqlClient, sql))
      // Every answer names the service (validators and operators' logs look for it) and gets the ops-db.
      const provided = <E>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, any>) =>
        effect.pipe(
          Effect.map(HttpServerResponse.setHeader("server", `ccat-dc/${version} TAP`)),
          Effect.provideService(SqlClient.SqlClient, sql)
        ) as Effect.Effect<HttpServerResponse.HttpServerResponse, E, never>

      const sync = Effect.gen(function* () {
        const caller = yield* TapRequest.caller
        const params = yield* TapRequest.params
        const format = yield* TapQuery.formatOf(params)
        const checked = yield* TapQuery.checkParams(params, limits)
        const output = yield* TapQuery.run({ ...checked, format, caller, timeout: limits.syncTimeout })
        return HttpServerResponse.text(output.body, { contentType: `${output.contentType}; charset=utf-8` })
      }).pipe(
        Effect.catchAll((e) => Effect.succeed(TapRequest.errorDocument(e instanceof AdqlError ? e : e))),
        provided
      )

      const availability = Effect.gen(function* () {
        const up = yield* sql`select 1`.pipe(Effect.timeout("5 seconds"), Effect.isSuccess)
        return TapRequest.xml(
          Vosi.availability(up, up ? "the service accepts queries" : "the ops-db does not answer; queries fail until it does")
        )
      })

      const capabilities = Effect.map(TapRequest.baseUrl, (base) => TapRequest.xml(Vosi.capabilities(base, limits, jobs.limits.retention)))
      const tables = Effect.sync(() => TapRequest.xml(Vosi.tableset()))
      const home = Effect.map(TapRequest.baseUrl, (base) => HttpServerResponse.html(landing(base)))
      for (const mount of TapRequest.mounts) {
        // On the credentials-required mount even the documents ask, so a client answers the
        // challenge at its first request and keeps sending its credentials.
        const guarded = <E>(effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, any>) =>
          mount === TapRequest.basePath
            ? provided(effect)
            : provided(
              TapRequest.caller.pipe(
                Effect.matchEffect({ onFailure: (e) => Effect.succeed(TapRequest.errorDocument(e)), onSuccess: () => effect })
              )
            )
        yield* router.get(mount, guarded(home))
        yield* router.get(`${mount}/sync`, sync)
        yield* router.post(`${mount}/sync`, sync)
        yield* router.get(`${mount}/availability`, guarded(availability))
        yield* router.get(`${mount}/capabilities`, guarded(capabilities))
        yield* router.get(`${mount}/tables`, guarded(tables))
        yield* UwsHttp.routes(router as unknown as HttpRouter.HttpRouter.Service<never, never>, jobs, provided, mount)
      }
    })
  )

/** The TAP routes with the environment's limits (`CCAT_TAP_*`). */
export const layer = layerWith()
