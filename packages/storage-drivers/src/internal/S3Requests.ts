/**
 * The S3 driver's requests to its bucket: every SDK call goes through `send`, which turns an SDK
 * failure into a StorageError with the storage reason (`S3Errors`), so the upload (`S3Upload`)
 * and the driver's other methods fail alike and name the same driver, method and key.
 */
import { HeadObjectCommand, type S3Client } from "@aws-sdk/client-s3"
import { StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import { reasonOf } from "./S3Errors.js"
import type { Options } from "./S3Options.js"

/** Our checksum is kept beside the object under this metadata key, or as a tag of this key. */
export const metadataKey = "ccat-checksum"

/** One driver's requests: its client, bucket and key prefix, and how its calls fail. */
export type Requests = ReturnType<typeof makeRequests>

/** The requests over a client the caller owns. */
export const makeRequests = (client: S3Client, options: Options) => {
  const name = options.name ?? "s3"
  const bucket = options.bucket
  const prefix = options.prefix ?? ""
  const objectKey = (key: string) => prefix + key
  const fail = (method: string, reason: StorageError.StorageErrorReason, description: string, key?: string) =>
    new StorageError.StorageError({ reason, driver: name, method, key, description })
  const send = <A>(method: string, key: string | undefined, f: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (cause) =>
        new StorageError.StorageError({
          reason: reasonOf(cause),
          driver: name,
          method,
          key,
          description: cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause),
          cause
        })
    })

  const head = (method: string, key: string) =>
    send(method, key, (abortSignal) => client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(key) }), { abortSignal }))

  const exists = (method: string, key: string) =>
    head(method, key).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false))
    )

  return { client, name, bucket, prefix, objectKey, fail, send, head, exists }
}
