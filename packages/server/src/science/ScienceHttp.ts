/**
 * The science routes beside the API contract: one raw file's bytes at
 * `GET /api/v1/files/{id}/content` and DataLink at `GET|POST /api/v1/datalink?ID=...`. Both
 * answer anonymous callers for public data, as Virtual Observatory clients expect, which the
 * contract's bearer-token groups cannot; a file's bytes are also a stream, not a JSON answer.
 * A server built without storages (an API-only test server) answers 503 for file bytes.
 */
import { type Ids } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { toServerResponse } from "@effect/platform-node/NodeHttpServerRequest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as ObsCorePublisher from "../ObsCorePublisher.js"
import { Storages } from "../lifecycle/Storages.js"
import * as DataLink from "./DataLink.js"
import * as DataLinkVotable from "./DataLinkVotable.js"
import * as FileContent from "./FileContent.js"
import * as ScienceAccess from "./ScienceAccess.js"

/** The path of a file's bytes. */
export const contentPath = "/api/v1/files/:id/content"

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

/** The science routes. */
export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Effect.serviceOption(Storages)

    const content = Effect.gen(function* () {
      const { id } = yield* HttpRouter.params
      if (id === undefined || !uuid.test(id)) return json(400, "BadRequest", `${JSON.stringify(id)} is not a RawDataFile id (a UUID)`)
      const who = yield* ScienceAccess.caller.pipe(Effect.either)
      if (who._tag === "Left") return json(401, "Unauthorized", who.left.message, { "www-authenticate": "Bearer" })
      if (Option.isNone(storages)) return json(503, "Unavailable", "this server reads no storage; ask the data center's main server")
      const opened = yield* FileContent.open(who.right, id as Ids.RawDataFileId).pipe(
        Effect.provideService(Storages, storages.value),
        Effect.either
      )
      if (opened._tag === "Left") return json(FileContent.statusOf[opened.left.reason], opened.left.reason, opened.left.message)
      const { file, body } = opened.right
      const request = yield* HttpServerRequest.HttpServerRequest
      // a failed check must reach the client as a failure: the connection is cut, so the
      // response ends short of its Content-Length instead of looking complete
      const aborting = body.pipe(
        Stream.tapError(() => Effect.sync(() => toServerResponse(request).destroy()))
      )
      return HttpServerResponse.stream(aborting, {
        status: 200,
        contentType: "application/octet-stream",
        contentLength: file.sizeBytes,
        headers: {
          "content-disposition": attachment(file.relativePath),
          "x-ccat-checksum": file.checksum,
          // which location served it is for accounts (operators debugging a read), not for anyone
          ...(who.right.kind === "account" ? { "x-ccat-read-from": opened.right.location } : {}),
          etag: `"${file.checksum}"`,
          "accept-ranges": "none",
          "cache-control": "private, no-store"
        }
      })
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    const datalink = Effect.gen(function* () {
      const votable = (status: number, body: string) => HttpServerResponse.text(body, { status, contentType: `${DataLinkVotable.contentType}; charset=utf-8` })
      const { ids, format } = yield* datalinkParams
      if (format !== undefined && !isVotable(format)) {
        return votable(400, DataLinkVotable.error(`UsageFault: RESPONSEFORMAT ${format} is not supported; this service answers VOTable only`))
      }
      if (ids.length > DataLink.maxIds) return votable(400, DataLinkVotable.error(`UsageFault: at most ${DataLink.maxIds} IDs per request, got ${ids.length}`))
      const who = yield* ScienceAccess.caller.pipe(Effect.either)
      if (who._tag === "Left") {
        return HttpServerResponse.text(DataLinkVotable.error(`AuthenticationFault: ${who.left.message}`), {
          status: 401, contentType: `${DataLinkVotable.contentType}; charset=utf-8`, headers: { "www-authenticate": "Bearer" }
        })
      }
      const publisher = yield* ObsCorePublisher.read
      const rows = yield* Effect.forEach(ids, (id) => DataLink.linksOf(who.right, publisher, id))
      return votable(200, DataLinkVotable.links(rows.flat()))
    }).pipe(Effect.provideService(SqlClient.SqlClient, sql))

    yield* router.get(contentPath, content)
    yield* router.get(datalinkPath, datalink)
    yield* router.post(datalinkPath, datalink)
  })
)
