/**
 * The S3 driver's `put`. A body up to one part is buffered (bounded by the part size) and sent
 * with one PutObject; a larger one becomes a multipart upload whose parts go up `concurrency` at
 * a time, so memory stays at about (concurrency + 2) × partSize whatever the object's size. The
 * upload is completed only after the body ended and its checksum matched; any failure or
 * interruption aborts it, so a partial object is never visible. Every request carries
 * Content-MD5, and our checksum is kept as metadata, or as a tag when a multipart upload began
 * without it.
 */
import { type RelativePath, type StorageDriver, StorageError } from "@ccat/core"
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as DigestPool from "./DigestPool.js"
import { metadataKey, type Requests } from "./S3Requests.js"
import { type Part, partsOf } from "./S3Parts.js"

const maxParts = 10_000

/** How uploads are cut and checked: the driver's options with their defaults applied. */
export interface UploadSettings {
  /** Parts uploaded at once. */
  readonly concurrency: number
  /** The part size; a put raises it for a huge object to stay under S3's part limit. */
  readonly basePartSize: number
  /** Send Content-MD5 with every request. */
  readonly md5: boolean
  /** Keep the checksum as a tag when a multipart upload began without it. */
  readonly tagChecksums: boolean
}

/** The driver's `put` over its requests. */
export const makePut = (requests: Requests, settings: UploadSettings) => {
  const { bucket, client, exists, fail, head, name, objectKey, send } = requests
  const { basePartSize, concurrency, md5, tagChecksums } = settings
  /**
   * The bytes to send and their Content-MD5 (none when switched off). MD5 runs on a worker
   * (`DigestPool`) and hands the bytes back: send the returned ones.
   */
  const withContentMd5 = (
    method: string,
    key: string,
    bytes: Uint8Array
  ): Effect.Effect<DigestPool.Digested | { readonly digest: undefined; readonly bytes: Uint8Array }, StorageError.StorageError> =>
    md5
      ? Effect.tryPromise({
        try: () => DigestPool.digest("md5", bytes),
        catch: (cause) =>
          new StorageError.StorageError({
            reason: "Unavailable",
            driver: name,
            method,
            key,
            description: `Content-MD5: ${String(cause)}`,
            cause
          })
      })
      : Effect.succeed({ digest: undefined, bytes })

  const put = <E>(key: RelativePath.RelativePath, body: Stream.Stream<Uint8Array, E>, opts: StorageDriver.MinimalPutOptions) =>
    Effect.gen(function* () {
      if (!opts.overwrite && (yield* exists("put", key))) {
        return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
      }
      const partSize = opts.sizeHint === undefined ? basePartSize : Math.max(basePartSize, Math.ceil(opts.sizeHint / (maxParts - 100)))
      const ifNoneMatch = opts.overwrite ? undefined : "*"
      const known = opts.checksum
      let uploadId: string | undefined
      let single: Buffer | undefined
      let total = 0
      const etags: Array<{ PartNumber: number; ETag: string }> = []
      const createUpload = yield* Effect.cached(
        send("put", key, (abortSignal) =>
          client.send(
            new CreateMultipartUploadCommand({
              Bucket: bucket,
              Key: objectKey(key),
              Metadata: known === undefined ? undefined : { [metadataKey]: known }
            }),
            { abortSignal }
          )).pipe(Effect.flatMap((r) => {
            uploadId = r.UploadId
            return uploadId === undefined ? Effect.fail(fail("put", "Unavailable", "no UploadId", key)) : Effect.succeed(uploadId)
          }))
      )
      const uploadPart = (part: Part) =>
        Effect.gen(function* () {
          total += part.bytes.length
          if (part.number === 1 && part.last) {
            single = part.bytes
            return
          }
          const id = yield* createUpload
          const { bytes, digest: partMd5 } = yield* withContentMd5("put", key, part.bytes)
          const res = yield* send("put", key, (abortSignal) =>
            client.send(
              new UploadPartCommand({
                Bucket: bucket,
                Key: objectKey(key),
                UploadId: id,
                PartNumber: part.number,
                Body: bytes,
                ContentLength: bytes.length,
                ContentMD5: partMd5
              }),
              { abortSignal }
            ))
          etags.push({ PartNumber: part.number, ETag: res.ETag ?? "" })
        })
      const upload = Effect.gen(function* () {
        yield* partsOf(body, partSize).pipe(Stream.mapEffect(uploadPart, { concurrency }), Stream.runDrain)
        // the body ended and (the lifted service checked) its checksum matched
        const digest = known ?? opts.digest()
        if (single !== undefined) {
          const { bytes, digest: objectMd5 } = yield* withContentMd5("put", key, single)
          yield* send("put", key, (abortSignal) =>
            client.send(
              new PutObjectCommand({
                Bucket: bucket,
                Key: objectKey(key),
                Body: bytes,
                ContentLength: bytes.length,
                ContentMD5: objectMd5,
                Metadata: digest === undefined ? undefined : { [metadataKey]: digest },
                IfNoneMatch: ifNoneMatch
              }),
              { abortSignal }
            ))
          return
        }
        const id = yield* createUpload
        etags.sort((a, b) => a.PartNumber - b.PartNumber)
        yield* send("put", key, (abortSignal) =>
          client.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: objectKey(key),
              UploadId: id,
              MultipartUpload: { Parts: etags },
              IfNoneMatch: ifNoneMatch
            }),
            { abortSignal }
          ))
        uploadId = undefined
        if (known === undefined && digest !== undefined && tagChecksums) {
          // metadata is fixed when a multipart upload starts; a tag can still be set now
          yield* send("put", key, (abortSignal) =>
            client.send(
              new PutObjectTaggingCommand({
                Bucket: bucket,
                Key: objectKey(key),
                Tagging: { TagSet: [{ Key: metadataKey, Value: digest }] }
              }),
              { abortSignal }
            )).pipe(Effect.ignore)
          const after = yield* head("put", key)
          if (after.ContentLength !== total) {
            return yield* fail(
              "put",
              "Corrupt",
              "the server replaced the object when tagged: it lacks object tagging; set tagChecksums: false",
              key
            )
          }
        }
      })
      yield* upload.pipe(
        Effect.onExit(() =>
          uploadId === undefined ?
            Effect.void :
            send(
              "put",
              key,
              () => client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: objectKey(key), UploadId: uploadId }))
            ).pipe(
              Effect.ignore
            )
        )
      )
      return { key, size: total, checksum: known ?? opts.digest() } satisfies StorageDriver.ObjectInfo
    })

  return put
}
