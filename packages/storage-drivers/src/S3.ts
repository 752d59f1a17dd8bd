/**
 * The S3 driver, on @aws-sdk/client-s3, for AWS and S3-compatible servers (Ceph radosgw, MinIO).
 *
 * - A body up to one part is buffered (bounded by `partSize`) and sent with one PutObject; a
 *   larger one becomes a multipart upload whose parts go up `concurrency` at a time, so memory
 *   stays at about (concurrency + 2) × partSize whatever the object's size. The upload is
 *   completed only after the body ended and its checksum matched; any failure or interruption
 *   aborts it, so a partial object is never visible.
 * - Integrity: every request carries Content-MD5 (radosgw and AWS reject a mismatch with
 *   BadDigest), and our own checksum is kept with the object (metadata `ccat-checksum` when it
 *   is known up front or the object is one part, an object tag otherwise), since a multipart
 *   ETag is not an MD5 of the object and radosgw stores none of the SDK's flexible checksums.
 * - Path-style addressing by default when an endpoint is given, as non-AWS servers need.
 * - `presign` hands out SigV4 query-signed GET and PUT URLs (at most 7 days, S3's limit), signed
 *   at the Effect clock's time so the expiry follows the same clock as the rest of the system.
 * - An `S3Client` can be injected for anything these options do not cover.
 *
 * The upload lives in `internal/S3Upload.ts`, the requests it shares with the other methods in
 * `internal/S3Requests.ts`.
 */
import { Checksum, type RelativePath, StorageDriver, StorageError } from "@ccat/core"
import * as HashRing from "@ccat/core/node/HashRing"
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig
} from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Readable } from "node:stream"
import { reasonOf } from "./internal/S3Errors.js"
import type { Options } from "./internal/S3Options.js"
import { makeRequests, metadataKey } from "./internal/S3Requests.js"
import { makePut } from "./internal/S3Upload.js"
import { fromReadable } from "./internal/streams.js"

/** The storage reason for an S3 SDK failure; the driver's options (see `internal/S3Options.ts`). */
export { type Options, reasonOf }

const MiB = 1024 * 1024
const maxCopyBytes = 5 * 1024 * MiB
/** SigV4 query signatures are valid for at most 7 days (AWS and radosgw refuse longer). */
export const maxPresignSeconds = 7 * 24 * 60 * 60

/** The S3 primitives over a client the caller owns. */
export const makeMinimal = (client: S3Client, options: Options): StorageDriver.Minimal => {
  const requests = makeRequests(client, options)
  const { bucket, exists, fail, head, name, objectKey, prefix, send } = requests
  const put = makePut(requests, {
    concurrency: Math.max(1, options.concurrency ?? 4),
    basePartSize: Math.max(5 * MiB, options.partSize ?? 16 * MiB),
    md5: options.contentMd5 ?? true,
    tagChecksums: options.tagChecksums ?? true
  })
  const validChecksum = (value: string | undefined) =>
    value !== undefined && Checksum.problem(value) === undefined ? value as Checksum.Checksum : undefined

  const get = (key: RelativePath.RelativePath, range: StorageDriver.ByteRange | undefined) =>
    Stream.unwrap(
      send("get", key, (abortSignal) =>
        client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: objectKey(key),
            Range: range === undefined ? undefined : `bytes=${range.start}-${range.end === undefined ? "" : range.end - 1}`
          }),
          { abortSignal }
        )).pipe(
          Effect.map((res) =>
            fromReadable(
              Effect.sync(() => res.Body as Readable),
              (cause) =>
                new StorageError.StorageError({
                  reason: "Unavailable",
                  driver: name,
                  method: "get",
                  key,
                  cause,
                  description: String(cause)
                })
            )
          ),
          Effect.catchIf(
            (e) =>
              range !== undefined &&
              ((e.cause as { name?: string })?.name === "InvalidRange" ||
                (e.cause as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 416),
            () => Effect.succeed(Stream.empty)
          )
        )
    )

  const stat = (key: RelativePath.RelativePath) =>
    Effect.gen(function* () {
      const res = yield* head("stat", key)
      let checksum = validChecksum(res.Metadata?.[metadataKey])
      if (checksum === undefined && (res.ETag ?? "").includes("-")) {
        const tags = yield* send(
          "stat",
          key,
          (abortSignal) => client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: objectKey(key) }), { abortSignal })
        ).pipe(
          Effect.option
        )
        if (tags._tag === "Some") checksum = validChecksum(tags.value.TagSet?.find((t) => t.Key === metadataKey)?.Value)
      }
      // An ETag alone may repeat when the same bytes are written again; the version id, where
      // the bucket keeps versions, and the modification time tell the writes apart.
      const identity = res.ETag === undefined
        ? undefined
        : `s3:${res.ETag}:${res.VersionId ?? ""}:${res.LastModified?.getTime() ?? ""}`
      return { key, size: res.ContentLength ?? 0, checksum, modifiedAt: res.LastModified, identity } satisfies StorageDriver.ObjectInfo
    })

  const remove = (key: RelativePath.RelativePath) =>
    send("delete", key, (abortSignal) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) }), { abortSignal }))
      .pipe(
        Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void),
        Effect.asVoid
      )

  const list = ({ prefix: p, cursor, limit }: { prefix: string; cursor: string | undefined; limit: number }) =>
    send("list", undefined, (abortSignal) =>
      client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: objectKey(p),
          StartAfter: cursor === undefined ? undefined : objectKey(cursor),
          MaxKeys: limit
        }),
        { abortSignal }
      )).pipe(Effect.map((res) => {
        const items = (res.Contents ?? []).map((o): StorageDriver.ObjectInfo => ({
          key: (o.Key ?? "").slice(prefix.length) as RelativePath.RelativePath,
          size: o.Size ?? 0,
          modifiedAt: o.LastModified
        }))
        return { items, cursor: res.IsTruncated === true && items.length > 0 ? items[items.length - 1]!.key : undefined }
      }))

  const copy = (from: RelativePath.RelativePath, to: RelativePath.RelativePath, opts: { readonly overwrite: boolean }) =>
    Effect.gen(function* () {
      const source = yield* head("copy", from)
      if ((source.ContentLength ?? 0) > maxCopyBytes) {
        return yield* fail("copy", "Unsupported", "CopyObject is limited to 5 GiB", from)
      }
      if (!opts.overwrite && (yield* exists("copy", to))) return yield* fail("copy", "AlreadyExists", "an object exists under this key", to)
      const copySource = `${bucket}/${objectKey(from).split("/").map(encodeURIComponent).join("/")}`
      yield* send("copy", to, (abortSignal) =>
        client.send(
          new CopyObjectCommand({ Bucket: bucket, Key: objectKey(to), CopySource: copySource, MetadataDirective: "COPY" }),
          { abortSignal }
        ))
      return yield* stat(to)
    })

  // Signing is offline, so a GET URL for a missing object would only fail when fetched, far from
  // the caller: check the object first and fail with NotFound here. A PUT URL is one PutObject,
  // atomic on the server, but it bypasses our checksum and may replace an existing object.
  const presign = (key: RelativePath.RelativePath, opts: { readonly method: "GET" | "PUT"; readonly expiresIn: Duration.Duration }) =>
    Effect.gen(function* () {
      const seconds = Math.ceil(Duration.toMillis(opts.expiresIn) / 1000)
      if (!(seconds >= 1 && seconds <= maxPresignSeconds)) {
        return yield* fail(
          "presign",
          "PermissionDenied",
          `expiresIn must be from 1 second to 7 days, got ${Duration.format(opts.expiresIn)}`,
          key
        )
      }
      if (opts.method === "GET") yield* head("presign", key)
      const signingDate = new Date(yield* Clock.currentTimeMillis)
      const command = opts.method === "GET"
        ? new GetObjectCommand({ Bucket: bucket, Key: objectKey(key) })
        : new PutObjectCommand({ Bucket: bucket, Key: objectKey(key) })
      return yield* send("presign", key, () => getSignedUrl(client, command, { expiresIn: seconds, signingDate }))
    })

  return {
    name,
    capabilities: { ...StorageDriver.noCapabilities, rangeRead: true, list: true, nativeCopy: true, presign: true },
    put,
    get,
    stat,
    delete: remove,
    list,
    copy,
    presign
  }
}

/** A client for the options: path-style for custom endpoints, no SDK retries (the lifted service retries). */
export const makeClient = (options: Options): S3Client => {
  const config: S3ClientConfig = {
    region: options.region ?? "us-east-1",
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    credentials: options.credentials,
    maxAttempts: 1,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  }
  return new S3Client(config)
}

/**
 * The full S3 storage service. A client made here is destroyed when the scope closes; an
 * injected one belongs to the caller. With `createBucket` the bucket is created if missing.
 */
export const make: (options: Options) => Effect.Effect<StorageDriver.Service, StorageError.StorageError, Scope.Scope> = Effect.fn(
  "S3.make"
)(function* (options: Options) {
  const client = options.client ?? (yield* Effect.acquireRelease(
    Effect.sync(() => makeClient(options)),
    (c) => Effect.sync(() => c.destroy())
  ))
  const minimal = makeMinimal(client, options)
  if (options.createBucket === true) {
    const send = <A>(f: () => Promise<A>) =>
      Effect.tryPromise({
        try: f,
        catch: (cause) =>
          new StorageError.StorageError({
            reason: reasonOf(cause),
            driver: minimal.name,
            method: "open",
            cause,
            description: String(cause)
          })
      })
    const found = yield* send(() => client.send(new HeadBucketCommand({ Bucket: options.bucket }))).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false))
    )
    if (!found) {
      yield* send(() => client.send(new CreateBucketCommand({ Bucket: options.bucket }))).pipe(
        Effect.catchIf((e) => e.reason === "AlreadyExists" || String(e.cause).includes("BucketAlready"), () => Effect.void)
      )
    }
  }
  // the object's SHA-256 on core's shared hashing ring, beside the parts' MD5 on the digest pool
  return StorageDriver.make(minimal, { retry: options.retry, hasher: HashRing.hasher })
})

/** A layer providing the generic StorageDriver port backed by a bucket. */
export const layer = (options: Options): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError> =>
  Layer.scoped(StorageDriver.StorageDriver, make(options))
