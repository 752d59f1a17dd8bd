/**
 * Staging from an S3 archive copy that rotted at rest, on a real radosgw: one byte of the
 * archived object is changed behind the platform's back (its metadata, our recorded checksum,
 * kept as it was), so only reading the bytes can tell. The S3 copy becomes CORRUPT (found by
 * staging) and staging serves the filed bytes from the second archive, a disk.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll } from "vitest"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import * as Radosgw from "../../../../scripts/radosgw.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import { addLocation, arrivedPackage, editLocations, quickRetries, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { credentialEnv } from "./EndToEndRemoteWorld.js"
import { layer, observatory, policyLayer, requestStaging, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

let s3: Radosgw.Radosgw | undefined
beforeAll(async () => {
  if (!Radosgw.isInstalled()) throw new Error("radosgw is not installed (see .ci/run)")
  s3 = await Radosgw.start()
  process.env[credentialEnv.accessKeyIdEnv] = s3.accessKeyId
  process.env[credentialEnv.secretAccessKeyEnv] = s3.secretAccessKey
}, 240_000)
afterAll(async () => {
  if (s3 !== undefined) await Radosgw.stop(s3.dir)
}, 120_000)

const prefix = "raw/"

/** Cologne's first archive on S3, its second a disk; two copies required. */
const s3AndDisk = (dir: string, bucket: string) =>
  topologyFrom(dir, (raw) => ({
    ...addLocation(
      editLocations(raw, (l) =>
        l.type === "LONG_TERM_ARCHIVE"
          ? {
            ...l,
            technology: "s3",
            priority: 0,
            driver: { bucket, prefix, endpoint: s3!.endpoint, region: s3!.region, createBucket: true, ...credentialEnv }
          }
          : l),
      "cologne",
      {
        name: "cologne-archive-2",
        type: "LONG_TERM_ARCHIVE",
        technology: "disk",
        priority: 1,
        driver: { root: path.join(dir, "locations", "cologne-archive-2") },
        retention: { keepForever: true }
      }
    ),
    policy: { ...raw.policy, archiveCopies: 2 }
  }))

/** Rewrites the object with one byte flipped in its middle and its metadata as it was, with a plain S3 client. */
const flipOnS3 = (bucket: string, key: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint: s3!.endpoint,
        region: s3!.region,
        forcePathStyle: true,
        credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey }
      })
    ),
    (c) =>
      Effect.promise(async () => {
        const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }))
        const bytes = Buffer.from(await got.Body!.transformToByteArray())
        bytes[Math.floor(bytes.length / 2)] ^= 0xff
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${key}`, Body: bytes, Metadata: got.Metadata }))
      }),
    (c) => Effect.sync(() => c.destroy())
  )

describe("Staging from a rotted S3 archive copy", () => {
  it.scopedLive("the S3 copy becomes CORRUPT and staging reads the disk archive: byte-identical files", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const bucket = `ccat-rot-${randomBytes(4).toString("hex")}`
      const topology = s3AndDisk(dir, bucket)
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 200_000 }, { path: "hk.dat", bytes: 3_000 }])
      const archived = Effect.map(
        sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`,
        ([p]) => p.status === "completed"
      )
      yield* runSitesUntil([["cologne", [Archiving.stage]]], archived, 60_000).pipe(Effect.provide(policyLayer(topology)))
      const copies = () => sql<{ id: string; location: string; path: string; status: string }>`
        select c.id, l.name as location, c.path, c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
        where c.raw_data_package_id = ${pkg.packageId} and l.type = 'LONG_TERM_ARCHIVE' order by l.priority`
      const [onS3] = yield* copies()
      assert.strictEqual(onS3.location, "cologne-archive")
      yield* flipOnS3(bucket, onS3.path)
      const req = yield* requestStaging(`sci-${randomBytes(3).toString("hex")}`, [pkg.eou.id])
      yield* runSitesUntil([["cologne", [quickRetries(Staging.stage)]]], req.completed, 60_000).pipe(Effect.provide(policyLayer(topology)))
      assert.deepStrictEqual((yield* copies()).map((c) => c.status), ["CORRUPT", "PRESENT"])
      const [event] = yield* sql<{ details: { by: string; detail: string } }>`
        select details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${onS3.id} and to_state = 'CORRUPT'`
      assert.strictEqual(event.details.by, "staging")
      assert.include(event.details.detail, "checksum mismatch")
      for (const f of pkg.files) {
        const staged = path.join(dir, "locations", "cologne-processing", Staging.stagedKey(pkg.eou.id, f.relativePath))
        assert.strictEqual(yield* Effect.promise(() => sha256File(staged)), f.checksum)
      }
    }).pipe(Effect.provide(layer)), 180_000)
})
