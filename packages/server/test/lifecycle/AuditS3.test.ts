/**
 * Audit and inventory against a real S3 server (Ceph radosgw): a package archived in a bucket by
 * the archiving stage gets one byte flipped behind the platform's back, its stored checksum left
 * as it was (so only reading the bytes can tell); one audit cycle marks it CORRUPT. Then an
 * object deleted from the bucket becomes MISSING through the inventory and an object planted
 * there is recorded as dark and left in place.
 */
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as Audit from "../../src/lifecycle/Audit.js"
import * as Inventory from "../../src/lifecycle/Inventory.js"
import { editLocations, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { archivedPackages, copyAt, findingEvents, statusOf, verifiedDaysAgo } from "./AuditWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"
import { clientOf, radosgw, rotInBucket } from "./S3World.js"

const credentialEnv = { accessKeyIdEnv: "CCAT_TEST_AUDIT_S3_KEY_ID", secretAccessKeyEnv: "CCAT_TEST_AUDIT_S3_SECRET" } as const
const prefix = "raw/"

const inventoryDone = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ done: boolean }>`
    select i.last_pass_completed_at is not null as done from location_inventory i
    join data_location l on l.id = i.data_location_id where l.name = 'cologne-archive'`).pipe(Effect.map((rows) => rows[0]?.done === true))

describe("Audit and inventory on S3", () => {
  it.scopedLive(
    "a byte flipped in a bucket is found by one audit cycle; a deleted object becomes MISSING, a planted one dark and kept",
    () =>
      Effect.gen(function* () {
        const s3 = yield* radosgw(credentialEnv)
        const client = yield* clientOf(s3)
        const dir = yield* tempDir
        const bucket = `ccat-audit-${randomBytes(4).toString("hex")}`
        const topology = topologyFrom(dir, (raw) => ({
          ...editLocations(raw, (l) =>
            l.type === "LONG_TERM_ARCHIVE"
              ? {
                name: l.name,
                type: l.type,
                technology: "s3",
                driver: { bucket, prefix, endpoint: s3.endpoint, region: s3.region, createBucket: true, ...credentialEnv },
                retention: { keepForever: true }
              }
              : l),
          policy: { ...raw.policy, audit: { cycleDays: 30 } }
        }))
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const [bad, good, gone] = yield* archivedPackages(topology, yield* observatory, [30_000, 20_000, 10_000])
          const badCopy = yield* copyAt("cologne-archive", bad.packageId)
          const goodCopy = yield* copyAt("cologne-archive", good.packageId)
          // one byte flipped; the object keeps the checksum stored with it, now a lie
          yield* rotInBucket(client, bucket, `${prefix}${badCopy.path}`)
          yield* verifiedDaysAgo(badCopy.id, 45)
          yield* verifiedDaysAgo(goodCopy.id, 40)
          yield* runSitesUntil([["cologne", [Audit.stage]]], Effect.map(statusOf(badCopy.id), (s) => s === "CORRUPT"))
          assert.strictEqual((yield* findingEvents(badCopy.id, "CORRUPT"))[0].details.by, "audit")
          yield* runSitesUntil(
            [["cologne", [Audit.stage]]],
            Effect.map(copyAt("cologne-archive", good.packageId), (c) => c.verifiedAt!.getTime() > Date.now() - 60_000)
          )
          assert.strictEqual(yield* statusOf(goodCopy.id), "PRESENT")
          // behind the platform's back: one object deleted, one planted
          const goneCopy = yield* copyAt("cologne-archive", gone.packageId)
          yield* Effect.promise(() => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${prefix}${goneCopy.path}` })))
          yield* Effect.promise(() =>
            client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}zz-planted/stray.bin`, Body: "nobody recorded me" }))
          )
          yield* runSitesUntil([["cologne", [Inventory.makeStage({ pageSize: 2 })]]], inventoryDone)
          assert.strictEqual(yield* statusOf(goneCopy.id), "MISSING")
          assert.strictEqual((yield* findingEvents(goneCopy.id, "MISSING"))[0].details.by, "inventory")
          const dark = yield* sql<{ path: string }>`
          select d.path from dark_object d join data_location l on l.id = d.data_location_id
          where l.name = 'cologne-archive' and d.resolved_at is null`
          assert.deepStrictEqual(dark.map((d) => d.path), ["zz-planted/stray.bin"])
          const planted = yield* Effect.promise(() =>
            client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}zz-planted/stray.bin` }))
          )
          assert.strictEqual(planted.ContentLength, 18)
          // the CORRUPT copy is still listed, so the inventory leaves it to repair
          assert.strictEqual(yield* statusOf(badCopy.id), "CORRUPT")
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    240_000
  )
})
