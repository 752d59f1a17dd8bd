/**
 * What every TAP request needs before its own work: its parameters (the query string, and for
 * a POST the form body, names regardless of case as DALI says), its caller (anonymous without a
 * token; a token that is presented must be valid; the credentials-required mount asks for one),
 * the service's base URL as the client reached it (through either mount), and the answers in TAP's shapes (an error is a VOTable error document).
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as ScienceAccess from "../science/ScienceAccess.js"
import { AdqlError } from "./Adql.js"
import * as Votable from "./Votable.js"

/** The path the service is mounted at. */
export const basePath = "/tap"

/**
 * The same service for clients that send credentials only when a server asks (TOPCAT, STILTS):
 * a request here without a token answers 401 with an HTTP Basic challenge, and the token is
 * taken as Basic's password. `/tap` itself cannot ask, since anonymous queries are welcome there.
 */
export const authPath = "/tap/auth"

/** Where the service is mounted: anonymous callers welcome, and credentials required. */
export const mounts = [basePath, authPath] as const

/** The challenge of the credentials-required mount. */
export const basicChallenge = 'Basic realm="CCAT archive", charset="UTF-8"'

/** A request the service refuses before running anything, with its HTTP status (and its WWW-Authenticate for a 401). */
export interface Refusal {
  readonly status: number
  readonly message: string
  readonly challenge?: string
}

/** The mount a request came through. */
export const mountOf = (url: string): (typeof mounts)[number] => {
  const path = new URL(url, "http://service").pathname
  return path === authPath || path.startsWith(`${authPath}/`) ? authPath : basePath
}

/** The request's parameters, names in lower case; the body's win over the query string's. */
export const params = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const out = new Map<string, string>()
  for (const [k, v] of new URL(request.url, "http://service").searchParams) out.set(k.toLowerCase(), v)
  if (request.method !== "POST") return out
  const body = yield* request.arrayBuffer.pipe(Effect.mapError(() => new AdqlError({ message: "the request body could not be read" })))
  if (body.byteLength === 0) return out
  const type = request.headers["content-type"] ?? "application/x-www-form-urlencoded"
  const form = yield* Effect.tryPromise({
    try: () => new Response(body, { headers: { "content-type": type } }).formData(),
    catch: () => new AdqlError({ message: "send the parameters as application/x-www-form-urlencoded or multipart/form-data" })
  })
  for (const [k, v] of form) {
    if (typeof v !== "string") return yield* new AdqlError({ message: `UPLOAD is not supported: the parameter ${k} is a file` })
    out.set(k.toLowerCase(), v)
  }
  return out
})

/**
 * The caller, as the science endpoints resolve it; a bad token is TAP's 401, and so is no token
 * on the credentials-required mount.
 */
export const caller = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const challenge = mountOf(request.url) === authPath ? basicChallenge : "Bearer"
  const who = yield* ScienceAccess.caller.pipe(Effect.mapError((e): Refusal => ({ status: 401, message: e.message, challenge })))
  if (who.kind === "anonymous" && challenge !== "Bearer") {
    return yield* Effect.fail<Refusal>({
      status: 401,
      challenge,
      message:
        `${authPath} answers callers with a token only: log in with any user name and your CCAT API token as the password (HTTP Basic), or send Authorization: Bearer <token>; ${basePath} answers anonymous callers with public data`
    })
  }
  return who
})

/** The service's base URL as the client reached it (honouring X-Forwarded-Proto and -Host from a proxy). */
export const baseUrl = Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
  const proto = (request.headers["x-forwarded-proto"] ?? "http").split(",")[0]!.trim()
  const host = (request.headers["x-forwarded-host"] ?? request.headers.host ?? "localhost").split(",")[0]!.trim()
  return `${/^https?$/.test(proto) ? proto : "http"}://${host}${mountOf(request.url)}`
})

/** An XML document. */
export const xml = (body: string, status = 200) => HttpServerResponse.text(body, { status, contentType: "text/xml; charset=utf-8" })

/** A VOTable error document with its status: 400 for the query's fault, 500 for the service's, 503 when it is full. */
export const errorDocument = (e: AdqlError | Refusal) => {
  const status = "status" in e ? e.status : e.fault === "service" ? 500 : e.fault === "busy" ? 503 : 400
  return HttpServerResponse.text(Votable.error(e.message), {
    status,
    contentType: `${Votable.contentType}; charset=utf-8`,
    ...(status === 401
      ? { headers: { "www-authenticate": ("challenge" in e ? e.challenge : undefined) ?? "Bearer" } }
      : status === 503
      ? { headers: { "retry-after": "30" } }
      : {})
  })
}

/** A 303 to a URL, as UWS answers a POST. */
export const seeOther = (location: string) => HttpServerResponse.empty({ status: 303, headers: { location } })
