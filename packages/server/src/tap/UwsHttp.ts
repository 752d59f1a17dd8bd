/**
 * The UWS 1.1 endpoints of `/tap/async`: create a job (POST, PHASE=RUN to start it at once),
 * read it (with WAIT to block while it runs), run or abort it through `phase`, change its
 * execution duration, destruction time or parameters while it is PENDING, read its results or
 * its error, and delete it. A job another account made answers 404, as one that does not exist.
 */
import type * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpRouterModule from "@effect/platform/HttpRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { AdqlError } from "./Adql.js"
import * as TapRequest from "./TapRequest.js"
import * as UwsJobs from "./UwsJobs.js"
import * as UwsXml from "./UwsXml.js"
import * as Votable from "./Votable.js"

// Parameters of UWS itself, not of the query: they act on the job and are not stored with it.
const control = new Set(["phase", "action", "executionduration", "destruction", "wait"])
const text = (body: string) => HttpServerResponse.text(body, { contentType: "text/plain; charset=utf-8" })
const missing = (id: string) =>
  HttpServerResponse.text(`no job ${id} (it may have been destroyed, or belong to another account)\n`, { status: 404 })
const badRequest = (message: string) => HttpServerResponse.text(`${message}\n`, { status: 400 })

type Provide = <E>(
  effect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, any>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, never>

/** Registers the async routes of the service mounted at `mount` on the router. */
export const routes = (
  router: HttpRouter.HttpRouter.Service<never, never>,
  jobs: UwsJobs.UwsJobs,
  provided: Provide,
  mount: `/${string}` = TapRequest.basePath
) =>
  Effect.gen(function* () {
    const asyncPath = `${mount}/async` as const
    // Resolves the caller and the job, then runs the handler; refusals become TAP error answers.
    const withJob = (
      handler: (
        job: UwsJobs.Job,
        ctx: { readonly params: Map<string, string>; readonly jobUrl: string; readonly asyncUrl: string }
      ) => Effect.Effect<HttpServerResponse.HttpServerResponse, AdqlError, any>
    ) =>
      Effect.gen(function* () {
        const caller = yield* TapRequest.caller
        const { id } = yield* HttpRouterModule.params
        const job = yield* jobs.get(caller, id ?? "")
        if (job === undefined) return missing(id ?? "")
        const base = yield* TapRequest.baseUrl
        const params = yield* TapRequest.params
        return yield* handler(job, { params, jobUrl: `${base}/async/${job.id}`, asyncUrl: `${base}/async` })
      }).pipe(Effect.catchAll((e) => Effect.succeed(TapRequest.errorDocument(e))), provided)

    const listJobs = Effect.gen(function* () {
      const caller = yield* TapRequest.caller
      const base = yield* TapRequest.baseUrl
      return TapRequest.xml(UwsXml.jobList(yield* jobs.list(caller), `${base}/async`))
    }).pipe(Effect.catchAll((e) => Effect.succeed(TapRequest.errorDocument(e))), provided)

    const createJob = Effect.gen(function* () {
      const caller = yield* TapRequest.caller
      const params = yield* TapRequest.params
      const stored = new Map([...params].filter(([k]) => !control.has(k)))
      const job = yield* jobs.create(caller, stored)
      if (params.get("phase")?.toUpperCase() === "RUN") yield* jobs.start(job)
      return TapRequest.seeOther(`${yield* TapRequest.baseUrl}/async/${job.id}`)
    }).pipe(Effect.catchAll((e) => Effect.succeed(TapRequest.errorDocument(e))), provided)

    const readJob = withJob((job, { params, jobUrl }) =>
      Effect.gen(function* () {
        const wait = params.get("wait")
        if (wait !== undefined) {
          const seconds = Number(wait)
          if (!Number.isFinite(seconds)) return badRequest("WAIT must be a number of seconds")
          const phase = params.get("phase")?.toUpperCase()
          // Block only while the job is in the phase the client last saw (or any active one).
          if (phase === undefined || phase === job.phase) yield* jobs.wait(job, Math.min(seconds < 0 ? 60 : seconds, 60))
        }
        return TapRequest.xml(UwsXml.job(job, jobUrl))
      })
    )

    const deleteJob = withJob((job, { asyncUrl }) => Effect.as(jobs.destroy(job), TapRequest.seeOther(asyncUrl)))

    const postJob = withJob((job, { params, jobUrl, asyncUrl }) =>
      Effect.gen(function* () {
        if (params.get("action")?.toUpperCase() === "DELETE") {
          yield* jobs.destroy(job)
          return TapRequest.seeOther(asyncUrl)
        }
        return yield* updateParameters(job, params, jobUrl)
      })
    )

    const updateParameters = (job: UwsJobs.Job, params: Map<string, string>, jobUrl: string) =>
      Effect.gen(function* () {
        const updates = [...params].filter(([k]) => !control.has(k))
        if (updates.length > 0 && job.phase !== "PENDING") {
          return badRequest(`the job is ${job.phase}: parameters change only while it is PENDING`)
        }
        for (const [k, v] of updates) job.params.set(k, v)
        if (params.get("phase")?.toUpperCase() === "RUN") yield* jobs.start(job)
        return TapRequest.seeOther(jobUrl)
      })

    const phase = withJob((job, { params, jobUrl }) =>
      Effect.gen(function* () {
        const wanted = params.get("phase")?.toUpperCase()
        if (wanted === "RUN") yield* jobs.start(job)
        else if (wanted === "ABORT") yield* jobs.abort(job)
        else return badRequest("PHASE must be RUN or ABORT")
        return TapRequest.seeOther(jobUrl)
      })
    )

    const executionDuration = withJob((job, { params, jobUrl }) =>
      Effect.sync(() => {
        const value = params.get("executionduration")
        if (!/^\d+$/.test(value ?? "")) return badRequest("EXECUTIONDURATION must be a whole number of seconds")
        if (job.phase !== "PENDING") return badRequest(`the job is ${job.phase}: its execution duration changes only while it is PENDING`)
        const hard = Math.round(Duration.toSeconds(jobs.tap.asyncTimeout))
        // 0 means "no limit" in UWS; the service's hard limit still holds.
        job.executionDuration = Number(value) === 0 ? hard : Math.min(Number(value), hard)
        return TapRequest.seeOther(jobUrl)
      })
    )

    const destruction = withJob((job, { params, jobUrl }) =>
      Effect.sync(() => {
        const value = params.get("destruction")
        const when = value === undefined ? NaN : Date.parse(value)
        if (Number.isNaN(when)) return badRequest("DESTRUCTION must be an ISO 8601 instant")
        // A job may be destroyed earlier than the service would, never kept longer.
        job.destruction = new Date(Math.min(when, job.destruction.getTime()))
        return TapRequest.seeOther(jobUrl)
      })
    )

    const result = withJob((job) =>
      Effect.succeed(
        job.phase === "COMPLETED" && job.result !== null
          ? HttpServerResponse.text(job.result.body, { contentType: `${job.result.contentType}; charset=utf-8` })
          : HttpServerResponse.text(`the job is ${job.phase}: it has no result\n`, { status: 404 })
      )
    )

    const error = withJob((job) =>
      Effect.succeed(
        job.phase === "ERROR" && job.error !== null
          ? HttpServerResponse.text(Votable.error(job.error), { contentType: `${Votable.contentType}; charset=utf-8` })
          : HttpServerResponse.text(`the job is ${job.phase}: it has no error\n`, { status: 404 })
      )
    )

    yield* router.get(asyncPath, listJobs)
    yield* router.post(asyncPath, createJob)
    yield* router.get(`${asyncPath}/:id`, readJob)
    yield* router.post(`${asyncPath}/:id`, postJob)
    yield* router.del(`${asyncPath}/:id`, deleteJob)
    yield* router.get(`${asyncPath}/:id/phase`, withJob((job) => Effect.succeed(text(job.phase))))
    yield* router.post(`${asyncPath}/:id/phase`, phase)
    yield* router.get(`${asyncPath}/:id/executionduration`, withJob((job) => Effect.succeed(text(String(job.executionDuration)))))
    yield* router.post(`${asyncPath}/:id/executionduration`, executionDuration)
    yield* router.get(`${asyncPath}/:id/destruction`, withJob((job) => Effect.succeed(text(job.destruction.toISOString()))))
    yield* router.post(`${asyncPath}/:id/destruction`, destruction)
    yield* router.get(`${asyncPath}/:id/quote`, withJob(() => Effect.succeed(text(""))))
    yield* router.get(`${asyncPath}/:id/owner`, withJob((job) => Effect.succeed(text(job.owner ?? ""))))
    yield* router.get(`${asyncPath}/:id/parameters`, withJob((job) => Effect.succeed(TapRequest.xml(UwsXml.parameterList(job)))))
    yield* router.post(`${asyncPath}/:id/parameters`, withJob((job, { params, jobUrl }) => updateParameters(job, params, jobUrl)))
    yield* router.get(
      `${asyncPath}/:id/results`,
      withJob((job, { jobUrl }) => Effect.succeed(TapRequest.xml(UwsXml.resultList(job, jobUrl))))
    )
    yield* router.get(`${asyncPath}/:id/results/result`, result)
    yield* router.get(`${asyncPath}/:id/error`, error)
  })
