/**
 * One raw file's bytes, straight from the archive (`GET /api/v1/files/{id}/content`), streamed
 * to a local path and checked on the way: its size against the response's length, its checksum
 * against the one the server states (the filed one). The file appears at the path only whole
 * and verified (it is written beside it under a temporary name and renamed); a failure leaves
 * nothing there. No staging request is made: the server reads the file by range from an online
 * copy of its package. A token is optional: without one only public data can be read.
 *
 * A byte stream is not a JSON answer, so this one call is made with the `HttpClient` directly
 * instead of through the contract-derived client.
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
import type * as CcatClient from "./CcatClient.js"

/** Why a download ended without the file. */
export const DownloadErrorReason = Schema.Literal("NotFound", "Unauthorized", "NotPackaged", "NeedsStaging", "Unavailable", "Corrupt", "Failed")
/** Why a download ended without the file. */
export type DownloadErrorReason = typeof DownloadErrorReason.Type

/**
 * A download ended without the file: `NotFound` (no such file, or not visible to the caller),
 * `Unauthorized` (a token was refused), `NotPackaged` (not archived yet), `NeedsStaging` (its
 * package is on tape only: stage it), `Unavailable` (no copy can be read now), `Corrupt` (the
 * bytes did not match the filed size or checksum, or the server cut the response because they
 * did not), `Failed` (the connection or the local disk failed).
 */
export class DownloadError extends Schema.TaggedError<DownloadError>()("DownloadError", {
  reason: DownloadErrorReason,
  fileId: Schema.String,
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** The file as written. */
export interface Downloaded {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

const reasons: Record<string, DownloadErrorReason> = {
  NotFound: "NotFound",
  Unauthorized: "Unauthorized",
  NotPackaged: "NotPackaged",
  NeedsStaging: "NeedsStaging",
  Unavailable: "Unavailable"
}

/**
 * Streams the file's bytes to `destination` (replacing what is there only once the new bytes are
 * whole and verified). Needs an `HttpClient` (e.g. `FetchHttpClient.layer`).
 */
export const downloadFile = (
  options: Pick<CcatClient.Options, "baseUrl" | "token" | "transformClient">,
  fileId: string,
  destination: string
): Effect.Effect<Downloaded, DownloadError, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const fail = (reason: DownloadErrorReason, message: string, status?: number) =>
      new DownloadError({ reason, fileId, message, ...(status === undefined ? {} : { status }) })
    const base = yield* HttpClient.HttpClient
    const client = options.transformClient === undefined ? base : options.transformClient(base)
    const token = options.token === undefined ? undefined : typeof options.token === "string" ? options.token : Redacted.value(options.token)
    let request = HttpClientRequest.get(`${options.baseUrl.replace(/\/+$/, "")}/api/v1/files/${encodeURIComponent(fileId)}/content`)
    if (token !== undefined) request = HttpClientRequest.bearerToken(request, token)
    const response = yield* client.execute(request).pipe(Effect.mapError((e) => fail("Failed", `the request failed: ${e.message}`)))
    if (response.status !== 200) {
      const body = yield* response.json.pipe(Effect.orElseSucceed(() => undefined))
      const tag = typeof body === "object" && body !== null && "_tag" in body ? String(body._tag) : ""
      const message = typeof body === "object" && body !== null && "message" in body ? String(body.message) : `HTTP ${response.status}`
      return yield* fail(reasons[tag] ?? "Failed", message, response.status)
    }
    const stated = response.headers["x-ccat-checksum"]
    const length = Number(response.headers["content-length"])
    if (stated === undefined || Checksum.problem(stated) !== undefined || !Number.isSafeInteger(length)) {
      return yield* fail("Failed", "the server stated no valid checksum and length for the file")
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
            response.stream.pipe(Stream.mapError((e) => fail("Corrupt", `the response ended early, the server found the bytes wrong or the connection failed: ${e.message}`))),
            (part) =>
              Effect.suspend(() => {
                bytes += part.length
                if (bytes > length) return Effect.fail(fail("Corrupt", `more than the stated ${length} bytes`))
                hash.update(part)
                return Effect.tryPromise({ try: () => handle.write(part), catch: io("cannot write") })
              })
          )
          if (bytes !== length) return yield* fail("Corrupt", `${bytes} bytes arrived, the server stated ${length}`)
          const actual = Checksum.make(algorithm, hash.digest("hex"))
          if (actual !== expected) return yield* fail("Corrupt", `checksum ${actual}, the file's is ${expected}`)
          yield* Effect.tryPromise({ try: () => handle.sync(), catch: io("cannot sync") })
          return bytes
        }),
      (handle) => Effect.promise(() => handle.close().catch(() => undefined))
    )
    const sizeBytes = yield* written.pipe(Effect.tapError(() => Effect.promise(() => fs.rm(temporary, { force: true }))))
    yield* Effect.tryPromise({ try: () => fs.rename(temporary, destination), catch: io("cannot rename") }).pipe(
      Effect.tapError(() => Effect.promise(() => fs.rm(temporary, { force: true })))
    )
    return { path: destination, sizeBytes, checksum: expected } satisfies Downloaded
  }).pipe(Effect.scoped, Effect.withSpan("FileDownload.downloadFile", { attributes: { fileId } }))
