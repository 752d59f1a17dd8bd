/**
 * Repair of an S3 archive copy that rotted at rest, on a real radosgw: one byte of the object is
 * changed behind the platform's back with its metadata (our recorded checksum) kept, so the
 * stored checksum still claims the object is good. Once the copy is marked CORRUPT (as an audit
 * would), repair writes it again from the disk archive: the S3 object is byte-identical again.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll } from "vitest"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Radosgw from "../../../../scripts/radosgw.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import { addLocation, arrivedPackage, editLocations, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { credentialEnv } from "./EndToEndRemoteWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

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

/** A plain S3 client beside the platform's driver. */
const withS3 = <A>(f: (c: S3Client) => Promise<A>) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint: s3!.endpoint,
        region: s3!.region,
        forcePathStyle: true,
        credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey }
      })
    ),
    (c) => Effect.promise(() => f(c)),
    (c) => Effect.sync(() => c.destroy())
  )

const readS3 = (bucket: string, key: string) =>
  withS3(async (c) =>
    Buffer.from(await (await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }))).Body!.transformToByteArray())
  )

describe("Repair of a rotted S3 archive copy", () => {
  it.scopedLive(
    "the object is written again from the disk archive although its stored checksum still matched",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const bucket = `ccat-repair-${randomBytes(4).toString("hex")}`
        const topology = s3AndDisk(dir, bucket)
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 60_000 }, { path: "hk.dat", bytes: 900 }])
        yield* runSitesUntil(
          [["cologne", [Archiving.stage]]],
          Effect.map(
            sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`,
            (rows) => rows[0].status === "completed"
          )
        ).pipe(Effect.provide(policyLayer(topology)))
        const good = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-archive-2", pkg.relativePath)))
        yield* withS3(async (c) => {
          const got = await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}${pkg.relativePath}` }))
          const bytes = Buffer.from(await got.Body!.transformToByteArray())
          bytes[Math.floor(bytes.length / 2)] ^= 0xff
          await c.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${pkg.relativePath}`, Body: bytes, Metadata: got.Metadata }))
        })
        assert.isFalse((yield* readS3(bucket, pkg.relativePath)).equals(good))
        const [copy] = yield* sql<{ id: string }>`
        select c.id from physical_copy c join data_location l on l.id = c.data_location_id
        where c.raw_data_package_id = ${pkg.packageId} and l.name = 'cologne-archive' and c.status = 'PRESENT'`
        assert.isTrue(
          yield* CopyFindings.mark(copy.id, "CORRUPT", { actor: "test:audit", by: "audit", detail: "one byte flipped at rest" })
        )
        yield* runSitesUntil(
          [["cologne", [Repair.stage]]],
          Effect.map(
            sql<{ status: string }>`select status::text as status from physical_copy where id = ${copy.id}`,
            (rows) => rows[0].status === "DELETED"
          )
        )
        assert.isTrue((yield* readS3(bucket, pkg.relativePath)).equals(good))
        const live = yield* sql<{ location: string; status: string }>`
        select l.name as location, c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
        where c.raw_data_package_id = ${pkg.packageId} and l.type = 'LONG_TERM_ARCHIVE' and c.status <> 'DELETED' order by l.name`
        assert.deepStrictEqual(live, [
          { location: "cologne-archive", status: "PRESENT" },
          { location: "cologne-archive-2", status: "PRESENT" }
        ])
        assert.deepStrictEqual(yield* Repair.belowTarget(2), [])
      }).pipe(Effect.provide(layer)),
    180_000
  )
})
