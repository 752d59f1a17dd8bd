/**
 * The S3 driver against a real S3-compatible server: a throwaway Ceph radosgw started by this
 * file (scripts/radosgw.ts) and stopped at its end. Where radosgw is not installed (or with
 * CCAT_S3_SERVER=fauxqs) the npm emulator fauxqs stands in; the server that ran is printed, and
 * the cases that need a real server's integrity checks run only on radosgw.
 */
import { StorageDriver } from "@ccat/core"
import { StorageDriverSuite } from "@ccat/core/testing"
import { S3 } from "@ccat/storage-drivers"
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  S3Client,
  UploadPartCommand
} from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestContext from "effect/TestContext"
import { createHash } from "node:crypto"
import { afterAll, beforeAll } from "vitest"
import * as Radosgw from "../../../scripts/radosgw.js"

const MiB = 1024 * 1024
const useRadosgw = process.env.CCAT_S3_SERVER !== "fauxqs" && Radosgw.isInstalled()
// 160 MiB is 20 parts of the suite's 8 MiB through a window of 4 uploads at once, 3.3 times the
// driver's memory bound of (4 + 2) x 8 MiB: the multipart streaming the round trip checks (its
// bounded-memory assertion starts at 512 MiB, so a larger default checked no more)
const largeBytes = Number(process.env.CCAT_S3_LARGE_BYTES ?? (useRadosgw ? 160 * MiB : 64 * MiB))
let server: Omit<Radosgw.Radosgw, "dir"> | undefined
let stop: () => Promise<void> = async () => undefined

beforeAll(async () => {
  const started = Date.now()
  if (useRadosgw) {
    const gw = await Radosgw.start()
    server = gw
    stop = () => Radosgw.stop(gw.dir)
  } else {
    const { startFauxqs } = await import("fauxqs")
    const faux = await startFauxqs({ port: 0, logger: false })
    server = {
      endpoint: faux.address,
      accessKeyId: "fauxqs",
      secretAccessKey: "fauxqs",
      region: "us-east-1",
      server: "fauxqs 1.9.2 (npm S3 emulator: radosgw is not installed; no Content-MD5 checks)"
    }
    stop = () => faux.stop()
  }
  console.log(`[s3 tests] S3 server: ${server.server} at ${server.endpoint}, started in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}, 180_000)

afterAll(() => stop(), 60_000)

const options = (extra: Partial<S3.Options> = {}): S3.Options => ({
  bucket: "ccat-tests",
  endpoint: server!.endpoint,
  region: server!.region,
  credentials: { accessKeyId: server!.accessKeyId, secretAccessKey: server!.secretAccessKey },
  createBucket: true,
  partSize: 8 * MiB,
  // fauxqs treats PUT ?tagging as a PutObject
  tagChecksums: useRadosgw,
  ...extra
})

StorageDriverSuite.run({
  name: `s3 (${useRadosgw ? "radosgw" : "fauxqs emulator"}; large object ${largeBytes} bytes)`,
  layer: Layer.suspend(() => S3.layer(options({ prefix: "suite/" }))),
  largeBytes
})

const reason = <A>(e: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.match(e, { onFailure: (err) => err.reason, onSuccess: () => "success" })

const rawClient = () =>
  new S3Client({
    endpoint: server!.endpoint,
    region: server!.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server!.accessKeyId, secretAccessKey: server!.secretAccessKey }
  })

describe.runIf(useRadosgw)("S3 on radosgw", () => {
  it.scopedLive("keeps our checksum with single-part and multipart objects", () =>
    Effect.gen(function* () {
      const d = yield* S3.make(options({ prefix: "checksums/", partSize: 5 * MiB }))
      const small = yield* d.put("one-part.bin", StorageDriverSuite.bodyOf(MiB, 1))
      assert.strictEqual((yield* d.stat("one-part.bin")).checksum, small.checksum)
      // multipart, checksum unknown up front: kept as an object tag
      const big = yield* d.put("multi.bin", StorageDriverSuite.bodyOf(12 * MiB + 5, 2))
      assert.strictEqual((yield* d.stat("multi.bin")).checksum, big.checksum)
      // multipart, checksum known up front: kept as metadata from the start
      const again = yield* d.put("multi-known.bin", StorageDriverSuite.bodyOf(12 * MiB + 5, 2), { checksum: big.checksum })
      const client = rawClient()
      const head = yield* Effect.promise(() =>
        client.send(new HeadObjectCommand({ Bucket: "ccat-tests", Key: "checksums/multi-known.bin" }))
      )
      client.destroy()
      assert.strictEqual(head.Metadata?.["ccat-checksum"], again.checksum)
      assert.match(head.ETag ?? "", /-3"$/, "a 3-part upload's ETag is not an MD5")
    }))

  it.scopedLive("every request that carries bytes carries their Content-MD5, computed off the main thread", () =>
    Effect.gen(function* () {
      const client = rawClient()
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      // what went over the wire: each request's Content-MD5 header beside the MD5 of its body
      const seen: Array<{ readonly sent: string | undefined; readonly actual: string }> = []
      client.middlewareStack.add((next) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown }
        if (request.body instanceof Uint8Array && request.body.length > 0) {
          seen.push({ sent: request.headers?.["content-md5"], actual: createHash("md5").update(request.body).digest("base64") })
        }
        return next(args)
      }, { step: "finalizeRequest", name: "recordContentMd5" })
      const d = yield* S3.make(options({ client, prefix: "md5/", partSize: 5 * MiB }))
      const big = yield* d.put("parts.bin", StorageDriverSuite.bodyOf(17 * MiB + 3, 4))
      const one = yield* d.put("one.bin", StorageDriverSuite.bodyOf(3 * MiB, 5))
      // 4 parts (three of 5 MiB, moved to a digest worker and back, and the 2 MiB rest) and one PutObject
      assert.strictEqual(seen.length, 5)
      for (const r of seen) assert.strictEqual(r.sent, r.actual)
      // the bytes stored are the body's, read back and hashed here (not the stored metadata)
      assert.strictEqual(
        (yield* StorageDriverSuite.digestOf(d.get("parts.bin"))).checksum,
        (yield* StorageDriverSuite.digestOf(StorageDriverSuite.bodyOf(17 * MiB + 3, 4))).checksum
      )
      assert.strictEqual(
        (yield* StorageDriverSuite.digestOf(d.get("one.bin"))).checksum,
        (yield* StorageDriverSuite.digestOf(StorageDriverSuite.bodyOf(3 * MiB, 5))).checksum
      )
      assert.strictEqual(big.checksum, (yield* StorageDriverSuite.digestOf(StorageDriverSuite.bodyOf(17 * MiB + 3, 4))).checksum)
      assert.strictEqual(one.checksum, (yield* StorageDriverSuite.digestOf(StorageDriverSuite.bodyOf(3 * MiB, 5))).checksum)
      // switched off, no request carries one
      seen.length = 0
      const plain = yield* S3.make(options({ client, prefix: "md5/", partSize: 5 * MiB, contentMd5: false }))
      yield* plain.put("plain.bin", StorageDriverSuite.bodyOf(11 * MiB, 6))
      assert.strictEqual(seen.length, 3)
      for (const r of seen) assert.isUndefined(r.sent)
    }))

  it.scopedLive("maps a part the server rejects (bad Content-MD5) to Corrupt", () =>
    Effect.gen(function* () {
      const client = rawClient()
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const d = yield* S3.make(options({ client, prefix: "digest/" }))
      yield* d.put("seed.txt", Stream.make(new TextEncoder().encode("x")))
      const created = yield* Effect.promise(() =>
        client.send(new CreateMultipartUploadCommand({ Bucket: "ccat-tests", Key: "digest/bad" }))
      )
      const body = Buffer.alloc(5 * MiB, 1)
      const wrong = createHash("md5").update("something else").digest("base64")
      const result = yield* Effect.tryPromise({
        try: () =>
          client.send(new UploadPartCommand({
            Bucket: "ccat-tests",
            Key: "digest/bad",
            UploadId: created.UploadId,
            PartNumber: 1,
            Body: body,
            ContentMD5: wrong
          })),
        catch: (e) => S3.reasonOf(e)
      }).pipe(Effect.flip)
      assert.strictEqual(result, "Corrupt")
      yield* Effect.promise(() =>
        client.send(new AbortMultipartUploadCommand({ Bucket: "ccat-tests", Key: "digest/bad", UploadId: created.UploadId }))
      )
    }))

  it.scopedLive("aborts the multipart upload of an interrupted write", () =>
    Effect.gen(function* () {
      const d = yield* S3.make(options({ prefix: "aborted/", partSize: 5 * MiB }))
      let sent = 0
      const body = Stream.concat(StorageDriverSuite.bodyOf(16 * MiB, 3), Stream.never as Stream.Stream<Uint8Array>).pipe(
        Stream.tap((c) => Effect.sync(() => {
          sent += c.length
        }))
      )
      const fiber = yield* Effect.fork(d.put("killed.bin", body))
      while (sent < 16 * MiB) yield* Effect.sleep("20 millis")
      yield* Effect.sleep("500 millis")
      yield* Fiber.interrupt(fiber)
      const client = rawClient()
      const uploads = yield* Effect.promise(() =>
        client.send(new ListMultipartUploadsCommand({ Bucket: "ccat-tests", Prefix: "aborted/" }))
      )
      client.destroy()
      assert.deepStrictEqual(uploads.Uploads ?? [], [])
      assert.strictEqual(yield* reason(d.stat("killed.bin")), "NotFound")
    }))

  it.scopedLive("presigns GET and PUT URLs that work without credentials", () =>
    Effect.gen(function* () {
      const d = yield* S3.make(options({ prefix: "presign/", partSize: 5 * MiB }))
      assert.isTrue(d.capabilities.presign)
      const put = yield* d.put("dir/obs 1.bin", StorageDriverSuite.bodyOf(6 * MiB + 3, 7))
      const url = yield* d.presign("dir/obs 1.bin", { expiresIn: "10 minutes" })
      assert.match(url, /X-Amz-Expires=600/)
      assert.notInclude(url, server!.secretAccessKey)
      const fetched = yield* Effect.promise(() => fetch(url))
      assert.strictEqual(fetched.status, 200)
      const bytes = new Uint8Array(yield* Effect.promise(() => fetched.arrayBuffer()))
      assert.strictEqual(bytes.length, put.size)
      assert.strictEqual(`sha256:${createHash("sha256").update(bytes).digest("hex")}`, put.checksum)

      const upload = yield* d.presign("uploaded.txt", { method: "PUT", expiresIn: "1 minute" })
      const sent = yield* Effect.promise(() => fetch(upload, { method: "PUT", body: "from a presigned PUT" }))
      assert.strictEqual(sent.status, 200)
      const text = yield* d.get("uploaded.txt").pipe(Stream.decodeText(), Stream.mkString)
      assert.strictEqual(text, "from a presigned PUT")

      // a URL for one key does not open another
      const other = yield* Effect.promise(() => fetch(url.replace("obs%201.bin", "uploaded.txt")))
      assert.strictEqual(other.status, 403)
    }))

  it.scopedLive("refuses to presign a missing object, an unsafe key or an expiry S3 cannot sign", () =>
    Effect.gen(function* () {
      const d = yield* S3.make(options({ prefix: "presign-bad/" }))
      assert.strictEqual(yield* reason(d.presign("missing.bin")), "NotFound")
      assert.strictEqual(yield* reason(d.presign("../escape")), "PermissionDenied")
      yield* d.put("present.txt", Stream.make(new TextEncoder().encode("x")))
      assert.strictEqual(yield* reason(d.presign("present.txt", { expiresIn: "8 days" })), "PermissionDenied")
      assert.strictEqual(yield* reason(d.presign("present.txt", { expiresIn: 0 })), "PermissionDenied")
    }))

  // Signed at the Effect clock's time: a URL signed two hours ago for one hour has expired, as
  // radosgw judges by its own (real) clock; no sleeping needed. The TestClock is provided here
  // because the suite's `layer(...)` above leaves the module's `it.scoped` without test services.
  it.scopedLive("the server refuses a URL after it expired", () =>
    Effect.gen(function* () {
      const d = yield* S3.make(options({ prefix: "presign-expired/" }))
      yield* d.put("old.txt", Stream.make(new TextEncoder().encode("expired")))
      yield* TestClock.setTime(Date.now() - 2 * 60 * 60 * 1000)
      const expired = yield* d.presign("old.txt", { expiresIn: "1 hour" })
      const refused = yield* Effect.promise(() => fetch(expired))
      assert.strictEqual(refused.status, 403)
      assert.match(yield* Effect.promise(() => refused.text()), /AccessDenied|expired/i)
      yield* TestClock.setTime(Date.now() - 30 * 60 * 1000)
      const valid = yield* d.presign("old.txt", { expiresIn: "1 hour" })
      const accepted = yield* Effect.promise(() => fetch(valid))
      assert.strictEqual(yield* Effect.promise(() => accepted.text()), "expired")
    }).pipe(Effect.provide(TestContext.TestContext)))

  it.scopedLive("reports an unreachable server as Unavailable", () =>
    Effect.gen(function* () {
      const d = yield* S3.make({
        ...options({ createBucket: false }),
        endpoint: "http://127.0.0.1:9",
        retry: { ...StorageDriver.defaultRetryPolicy, times: 1, base: "10 millis" }
      })
      assert.strictEqual(yield* reason(d.stat("anything")), "Unavailable")
    }))
})
