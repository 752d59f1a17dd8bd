/**
 * A GET of bytes the server states the checksum of (`X-Ccat-Checksum`) and the length of,
 * streamed to a local path and checked on the way; the bytes appear at the path only whole and
 * verified (written beside it under a temporary name and renamed), a failure leaves nothing.
 * Shared by the file and package downloads, each with its own error.
 */
import { Checksum } from "@ccat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type * as CcatClient from "../CcatClient.js"

/** Why a download ended without the bytes. */
export type Reason = "NotFound" | "Unauthorized" | "NotPackaged" | "NeedsStaging" | "Unavailable" | "Corrupt" | "Failed"

/** What was written. */
export interface Written {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

const reasons: Record<string, Reason> = {
  NotFound: "NotFound",
  Unauthorized: "Unauthorized",
  NotPackaged: "NotPackaged",
  NeedsStaging: "NeedsStaging",
  Unavailable: "Unavailable"
}

/** What a download needs of the client's options. */
export type Options = Pick<CcatClient.Options, "baseUrl" | "token" | "transformClient">

/** The fields every download's error carries after its reason and its id: the HTTP status when the server answered, and what happened. */
export const failureFields = {
  status: Schema.optional(Schema.Number),
  message: Schema.String
}

/** Why a download failed, as every download's error carries it; `status` only when the server answered. */
export interface Failure {
  readonly reason: Reason
  readonly message: string
  readonly status?: number
}

/** What one kind of download is: its collection in the URL, its span, its id's name, its error. */
export interface Kind<E> {
  readonly collection: "files" | "packages"
  readonly span: string
  readonly idAttribute: string
  readonly toError: (failure: Failure, id: string) => E
}

/**
 * A download of one kind: streams `/api/v1/{collection}/{id}/content` (under the base URL) to
 * `destination`, verified, failing with the kind's error.
 */
export const downloader =
  <E>(kind: Kind<E>) => (options: Options, id: string, destination: string): Effect.Effect<Written, E, HttpClient.HttpClient> =>
    download(options, `/api/v1/${kind.collection}/${encodeURIComponent(id)}/content`, destination, (failure) => kind.toError(failure, id))
      .pipe(
        Effect.withSpan(kind.span, { attributes: { [kind.idAttribute]: id } })
      )

/** Streams `urlPath` (under the base URL) to `destination`, verified; `toError` makes the caller's error. */
const download = <E>(
  options: Options,
  urlPath: string,
  destination: string,
  toError: (failure: Failure) => E
): Effect.Effect<Written, E, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const fail = (reason: Reason, message: string, status?: number) =>
      toError({ reason, message, ...(status === undefined ? {} : { status }) })
    const base = yield* HttpClient.HttpClient
    const client = options.transformClient === undefined ? base : options.transformClient(base)
    const token = options.token === undefined
      ? undefined
      : typeof options.token === "string"
      ? options.token
      : Redacted.value(options.token)
    let request = HttpClientRequest.get(`${options.baseUrl.replace(/\/+$/, "")}${urlPath}`)
    if (token !== undefined) request = HttpClientRequest.bearerToken(request, token)
    const response = yield* client.execute(request).pipe(Effect.mapError((e) => fail("Failed", `the request failed: ${e.message}`)))
    if (response.status !== 200) {
      const body = yield* response.json.pipe(Effect.orElseSucceed(() => undefined))
      const tag = typeof body === "object" && body !== null && "_tag" in body ? String(body._tag) : ""
      const message = typeof body === "object" && body !== null && "message" in body ? String(body.message) : `HTTP ${response.status}`
      return yield* Effect.fail(fail(reasons[tag] ?? "Failed", message, response.status))
    }
    const stated = response.headers["x-ccat-checksum"]
    const length = Number(response.headers["content-length"])
    if (stated === undefined || Checksum.problem(stated) !== undefined || !Number.isSafeInteger(length)) {
      return yield* Effect.fail(fail("Failed", "the server stated no valid checksum and length"))
    }
    const expected = stated as Checksum.Checksum
    const { algorithm } = Checksum.parse(expected)
    const temporary = path.join(path.dirname(destination), `.${path.basename(destination)}.ccat-${randomBytes(6).toString("hex")}`)
    const io = (what: string) => (e: unknown) => fail("Failed", `${what} ${temporary}: ${e instanceof Error ? e.message : String(e)}`)
    const written = Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => fs.open(temporary, "wx"), catch: io("cannot create") }),
      (handle) =>
        Effect.gen(function* () {
          const hash = createHash(Checksum.nodeHashName[algorithm])
          let bytes = 0
          yield* Stream.runForEach(
            response.stream.pipe(
              Stream.mapError((e) =>
                fail("Corrupt", `the response ended early, the server found the bytes wrong or the connection failed: ${e.message}`)
              )
            ),
            (part) =>
              Effect.suspend(() => {
                bytes += part.length
                if (bytes > length) return Effect.fail(fail("Corrupt", `more than the stated ${length} bytes`))
                hash.update(part)
                return Effect.tryPromise({ try: () => handle.write(part), catch: io("cannot write") })
              })
          )
          if (bytes !== length) return yield* Effect.fail(fail("Corrupt", `${bytes} bytes arrived, the server stated ${length}`))
          const actual = Checksum.make(algorithm, hash.digest("hex"))
          if (actual !== expected) return yield* Effect.fail(fail("Corrupt", `checksum ${actual}, the server stated ${expected}`))
          yield* Effect.tryPromise({ try: () => handle.sync(), catch: io("cannot sync") })
          return bytes
        }),
      (handle) => Effect.promise(() => handle.close().catch(() => undefined))
    )
    const sizeBytes = yield* written.pipe(Effect.tapError(() => Effect.promise(() => fs.rm(temporary, { force: true }))))
    yield* Effect.tryPromise({ try: () => fs.rename(temporary, destination), catch: io("cannot rename") }).pipe(
      Effect.tapError(() => Effect.promise(() => fs.rm(temporary, { force: true })))
    )
    return { path: destination, sizeBytes, checksum: expected } satisfies Written
  }).pipe(Effect.scoped)
