/**
 * The science routes beside the API contract: one raw file's bytes at
 * `GET /api/v1/files/{id}/content`, a whole package's tar at `GET /api/v1/packages/{id}/content`
 * and DataLink at `GET|POST /api/v1/datalink?ID=...`. They answer anonymous callers for public
 * data, as Virtual Observatory clients expect, which the contract's bearer-token groups cannot;
 * bytes are also a stream, not a JSON answer. A server built without storages (an API-only test
 * server) answers 503 for bytes.
 */
import { type Ids } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { toServerResponse } from "@effect/platform-node/NodeHttpServerRequest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as ObsCorePublisher from "../ObsCorePublisher.js"
import { Storages } from "../lifecycle/Storages.js"
import * as DataLink from "./DataLink.js"
import * as DataLinkVotable from "./DataLinkVotable.js"
import * as FileContent from "./FileContent.js"
import * as PackageContent from "./PackageContent.js"
import * as ScienceAccess from "./ScienceAccess.js"
import * as TapRequest from "../tap/TapRequest.js"

/** The path of a file's bytes. */
export const contentPath = "/api/v1/files/:id/content"

/** The path of a package's tar. */
export const packageContentPath = "/api/v1/packages/:id/content"

/** The path of the DataLink service. */
export const datalinkPath = "/api/v1/datalink"

const json = (status: number, tag: string, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ _tag: tag, message }, { status, headers })

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A filename for Content-Disposition: the path's last part, quoted safely. */
const attachment = (relativePath: string) => {
  const name = relativePath.split("/").pop() ?? "file"
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_")
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}

/**
 * The challenge an anonymous caller gets for something that is not public: HTTP Basic, which
 * TOPCAT, STILTS and browsers answer (the token as the password), as `/tap/auth`'s; API
 * clients send their Bearer token unasked.
 */
const challenge = TapRequest.basicChallenge

const notPublic =
  "nothing public has this id; send a CCAT token (as a Bearer token, or as HTTP Basic's password with any user name) to read proprietary data your programs hold"

/**
 * The answer to a bytes request `open` refused. An anonymous caller asking for something that is
 * not public (or does not exist: the same answer, so that an id's existence is not confirmed) is
 * challenged for credentials, so a VO client following a link to proprietary data signs in
 * rather than seeing "not found"; an account gets the reason's own status.
 */
const refusal = (who: ScienceAccess.Caller, e: FileContent.ContentError) =>
  who.kind === "anonymous" && e.reason === "NotFound"
    ? json(401, "Unauthorized", notPublic, { "www-authenticate": challenge })
    : json(FileContent.statusOf[e.reason], e.reason, e.message)

/** The request's DataLink parameters: every ID (query string, and a form body for POST) and RESPONSEFORMAT. */
const datalinkParams = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const ids: Array<string> = []
  let format: string | undefined
  const take = (k: string, v: string) => {
    if (k.toUpperCase() === "ID") ids.push(v)
    if (k.toUpperCase() === "RESPONSEFORMAT") format = v
  }
  for (const [k, v] of new URL(request.url, "http://service").searchParams) take(k, v)
  if (request.method === "POST") {
    const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
    for (const [k, v] of new URLSearchParams(body)) take(k, v)
  }
  return { ids, format }
})

// DataLink 1.1 §3.2.2: a RESPONSEFORMAT is read without its MIME type parameters
const votableFormats = new Set(["votable", "application/x-votable+xml", "text/xml"])
const isVotable = (format: string) => votableFormats.has(format.split(";")[0]!.trim().toLowerCase())

/**
 * How many downloads of bytes (files and package tars) run at once on this server
 * (`CCAT_MAX_DOWNLOADS`, default 32): each holds a storage read open (an S3 connection, a file
 * handle) for as long as its caller reads, so a caller opening many, or many slow readers, could
 * otherwise exhaust them for the lifecycle. Beyond it a download is answered 503 with Retry-After.
 */
export const maxDownloads = Config.integer("CCAT_MAX_DOWNLOADS").pipe(
  Config.validate({ message: "CCAT_MAX_DOWNLOADS must be a whole number from 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 }),
  Config.withDefault(32)
)

/** The downloads running now, against the limit. */
interface Slots {
  readonly limit: number
  running: number
}

/** Every download slot was taken when a download asked for one. */
class Busy {
  readonly message: string
  constructor(limit: number) {
    this.message = `this server already runs its limit of ${limit} downloads; retry shortly`
  }
}

/**
 * `body` with its first part already pulled, or the failure that came before any byte. The read
 * and its download slot stay open between the two: both are released when the rest of the body
 * ends or when the HTTP response closes, whichever is first, so an answer the server never writes
 * (the caller hung up) leaves nothing open.
 */
const started = <E>(
  body: Stream.Stream<Uint8Array, E>,
  response: { once(event: "close", f: () => void): unknown },
  slots: Slots
): Effect.Effect<Either.Either<Stream.Stream<Uint8Array, E>, E | Busy>> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function* () {
      if (slots.running >= slots.limit) return Either.left(new Busy(slots.limit))
      slots.running++
      const scope = yield* Scope.make()
      yield* Scope.addFinalizer(scope, Effect.sync(() => slots.running--))
      const close = Scope.close(scope, Exit.void)
      const runtime = yield* Effect.runtime<never>()
      response.once("close", () => void Runtime.runFork(runtime)(close))
      const pull = yield* Scope.extend(Stream.toPull(body), scope)
      // a verified body holds its last part back, so its first pulls may bring nothing yet
      const first = yield* restore(Effect.repeat(pull, { until: (chunk) => Chunk.isNonEmpty(chunk) })).pipe(
        Effect.either,
        Effect.onInterrupt(() => close)
      )
      if (Either.isRight(first)) {
        return Either.right(Stream.fromChunk(first.right).pipe(Stream.concat(Stream.repeatEffectChunkOption(pull)), Stream.ensuring(close)))
      }
      yield* close
      return Option.match(first.left, {
        onNone: (): Either.Either<Stream.Stream<Uint8Array, E>, E | Busy> => Either.right(Stream.empty),
        onSome: (e) => Either.left(e)
      })
    })
  )

/** The science routes. */
export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Effect.serviceOption(Storages)
    const slots: Slots = { limit: yield* maxDownloads, running: 0 }

    // A failed check must reach the client as a failure. Before the first byte (a body read in
    // one part, such as any file under the disk driver's 4 MiB read, fails its check before it
    // sends anything) the answer is still open: a 503 with the reason. Once bytes flow, the
    // connection is cut, so the response ends short of its Content-Length instead of looking complete.
    const verifiedStream = (
      body: Stream.Stream<Uint8Array, FileContent.ContentFailure>,
      what: { readonly contentType: string; readonly sizeBytes: number; readonly name: string; readonly checksum: string },
      who: ScienceAccess.Caller,
      location: string
    ) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const response = toServerResponse(request)
        const begun = yield* started(body, response, slots)
        if (Either.isLeft(begun)) {
          const refused = begun.left
          return refused instanceof Busy
            ? json(503, "Busy", refused.message, { "retry-after": "2" })
            : json(
              503,
              "Unavailable",
              `${refused.message}; nothing was sent. The copy read is checked again; a retry reads another copy if this one is bad`,
              { "retry-after": "5" }
            )
        }
        return HttpServerResponse.stream(begun.right.pipe(Stream.tapError(() => Effect.sync(() => response.destroy()))), {
          status: 200,
          contentType: what.contentType,
          contentLength: what.sizeBytes,
          headers: {
            "content-disposition": attachment(what.name),
            "x-ccat-checksum": what.checksum,
            // which location served it is for accounts (operators debugging a read), not for anyone
            ...(who.kind === "account" ? { "x-ccat-read-from": location } : {}),
            etag: `"${what.checksum}"`,
            // a part cannot be checked against the checksum of the whole
            "accept-ranges": "none",
            "cache-control": "private, no-store"
          }
        })
      })

    /** The caller and the storages for a bytes route, or the answer that refuses it. */
    const bytesRequest = (kind: string): Effect.Effect<
      Either.Either<
        { readonly id: string; readonly who: ScienceAccess.Caller; readonly storages: Context.Tag.Service<Storages> },
        HttpServerResponse.HttpServerResponse
      >,
      never,
      HttpRouter.RouteContext | HttpServerRequest.HttpServerRequest | SqlClient.SqlClient
    > =>
      Effect.gen(function* () {
        const { id } = yield* HttpRouter.params
        if (id === undefined || !uuid.test(id)) {
          return Either.left(json(400, "BadRequest", `${JSON.stringify(id)} is not a ${kind} id (a UUID)`))
        }
        const who = yield* ScienceAccess.caller.pipe(Effect.either)
        if (who._tag === "Left") return Either.left(json(401, "Unauthorized", who.left.message, { "www-authenticate": "Bearer" }))
        if (Option.isNone(storages)) {
          return Either.left(json(503, "Unavailable", "this server reads no storage; ask the data center's main server"))
        }
        return Either.right({ id: id.toLowerCase(), who: who.right, storages: storages.value })
      })

    const content = Effect.gen(function* () {
      const request = yield* bytesRequest("RawDataFile")
      if (Either.isLeft(request)) return request.left
      const asked = request.right
      const opened = yield* FileContent.open(asked.who, asked.id as Ids.RawDataFileId).pipe(
        Effect.provideService(Storages, asked.storages),
        Effect.either
      )
      if (opened._tag === "Left") return refusal(asked.who, opened.left)
      const { file, body, location } = opened.right
      return yield* verifiedStream(
        body,
        { contentType: "application/octet-stream", sizeBytes: file.sizeBytes, name: file.relativePath, checksum: file.checksum },
        asked.who,
        location
      )
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    const packageContent = Effect.gen(function* () {
      const request = yield* bytesRequest("RawDataPackage")
      if (Either.isLeft(request)) return request.left
      const asked = request.right
      const opened = yield* PackageContent.open(asked.who, asked.id).pipe(Effect.provideService(Storages, asked.storages), Effect.either)
      if (opened._tag === "Left") return refusal(asked.who, opened.left)
      const { pkg, body, location } = opened.right
      return yield* verifiedStream(
        body,
        { contentType: "application/x-tar", sizeBytes: pkg.sizeBytes, name: pkg.relativePath, checksum: pkg.checksum },
        asked.who,
        location
      )
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    const datalink = Effect.gen(function* () {
      const votable = (status: number, body: string) =>
        HttpServerResponse.text(body, { status, contentType: `${DataLinkVotable.contentType}; charset=utf-8` })
      const { ids, format } = yield* datalinkParams
      if (format !== undefined && !isVotable(format)) {
        return votable(
          400,
          DataLinkVotable.error(`UsageFault: RESPONSEFORMAT ${format} is not supported; this service answers VOTable only`)
        )
      }
      if (ids.length > DataLink.maxIds) {
        return votable(400, DataLinkVotable.error(`UsageFault: at most ${DataLink.maxIds} IDs per request, got ${ids.length}`))
      }
      const who = yield* ScienceAccess.caller.pipe(Effect.either)
      if (who._tag === "Left") {
        return HttpServerResponse.text(DataLinkVotable.error(`AuthenticationFault: ${who.left.message}`), {
          status: 401,
          contentType: `${DataLinkVotable.contentType}; charset=utf-8`,
          headers: { "www-authenticate": "Bearer" }
        })
      }
      const publisher = yield* ObsCorePublisher.read
      const rows = (yield* Effect.forEach(ids, (id) => DataLink.linksOf(who.right, publisher, id))).flat()
      if (who.right.kind === "anonymous" && rows.some((r) => r.hidden === true)) {
        return HttpServerResponse.text(DataLinkVotable.error(`AuthenticationFault: ${notPublic}`), {
          status: 401,
          contentType: `${DataLinkVotable.contentType}; charset=utf-8`,
          headers: { "www-authenticate": challenge }
        })
      }
      return votable(200, DataLinkVotable.links(rows))
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    yield* router.get(contentPath, content)
    yield* router.get(packageContentPath, packageContent)
    yield* router.get(datalinkPath, datalink)
    yield* router.post(datalinkPath, datalink)
  })
)
