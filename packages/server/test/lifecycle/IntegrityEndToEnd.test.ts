/**
 * Integrity at rest, stage to stage, on the three archive technologies at once: a package archived
 * on a disk archive, an S3 bucket (real radosgw) and a virtual tape library gets one byte flipped
 * behind the platform's back in one of them each. The audit finds every one within one cycle, the
 * copy is marked CORRUPT, repair writes it again from a good copy, and staging returns files
 * byte-identical to what was filed. With every copy of a package rotten, staging fails at once with
 * the reason, and the package shows it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type * as Radosgw from "../../../../scripts/radosgw.js"
import * as Audit from "../../src/lifecycle/Audit.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import { addLocation, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { archivedPackages, findingEvents, flipByte, flipByteOnTape, verifiedDaysAgo } from "./AuditWorld.js"
import { layer, observatory, policyLayer, requestStaging, syncTopology, tempDir } from "./LifecycleWorld.js"
import { clientOf, radosgw, rotInBucket } from "./S3World.js"
import { sha256File } from "./support.js"

const credentialEnv = { accessKeyIdEnv: "CCAT_TEST_INTEGRITY_S3_KEY_ID", secretAccessKeyEnv: "CCAT_TEST_INTEGRITY_S3_SECRET" } as const
const prefix = "raw/"

/** Cologne's archives: the demo's disk archive, an S3 bucket and a virtual tape library; a copy on each. */
const threeArchives = (dir: string, s3: Radosgw.Radosgw, bucket: string) =>
  topologyFrom(dir, (raw) => {
    const withS3 = addLocation(raw, "cologne", {
      name: "cologne-archive-s3",
      type: "LONG_TERM_ARCHIVE",
      technology: "s3",
      priority: 1,
      driver: { bucket, prefix, endpoint: s3.endpoint, region: s3.region, createBucket: true, ...credentialEnv },
      retention: { keepForever: true }
    })
    const withTape = addLocation(withS3, "cologne", {
      name: "cologne-archive-tape",
      type: "LONG_TERM_ARCHIVE",
      technology: "tape",
      priority: 2,
      driver: { root: path.join(dir, "locations", "cologne-archive-tape"), library: "virtual", keepOnline: false },
      retention: { keepForever: true }
    })
    return { ...withTape, policy: { ...withTape.policy, archiveCopies: 3, audit: { cycleDays: 30, tapeCycleDays: 30 } } }
  })

interface Copy {
  readonly id: string
  readonly packageId: string
  readonly location: string
  readonly path: string
  readonly status: string
  readonly verified: boolean
}

const archiveCopies = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Copy>`
    select c.id, c.raw_data_package_id as package_id, l.name as location, c.path, c.status::text as status, c.verified_at is not null as verified
    from physical_copy c join data_location l on l.id = c.data_location_id
    where l.type = 'LONG_TERM_ARCHIVE' order by l.name, c.created_at`)

const copyOf = (copies: ReadonlyArray<Copy>, packageId: string, location: string) =>
  copies.find((c) => c.packageId === packageId && c.location === location && c.status !== "DELETED")!

/** Every package has one live, verified PRESENT copy at each of the three archives, and no bad copy is left. */
const allGood = (packages: number) =>
  Effect.map(archiveCopies, (copies) => {
    const live = copies.filter((c) => c.status !== "DELETED")
    return live.length === packages * 3 && live.every((c) => c.status === "PRESENT" && c.verified)
  })

describe("integrity at rest on disk, S3 and tape: audit, repair, staging", () => {
  it.scopedLive(
    "a byte flipped in each technology is found by one audit cycle, repaired from a good copy, and staged byte-identical; with no good copy left staging fails with the reason",
    () =>
      Effect.gen(function* () {
        const s3 = yield* radosgw(credentialEnv)
        const client = yield* clientOf(s3)
        const dir = yield* tempDir
        const bucket = `ccat-integrity-${randomBytes(4).toString("hex")}`
        const topology = threeArchives(dir, s3, bucket)
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const pkgs = yield* archivedPackages(topology, yield* observatory, [60_000, 40_000, 20_000])
          assert.isTrue(yield* allGood(pkgs.length), "archived on all three")
          // Only archive copies are left to repair from: the buffers were cleaned up.
          const originals = new Map<string, Buffer>()
          for (const p of pkgs) {
            originals.set(
              p.packageId,
              yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", p.relativePath)))
            )
          }
          yield* sql`update physical_copy set status = 'DELETED' where raw_data_package_id is not null
          and data_location_id in (select id from data_location where type = 'BUFFER')`

          // Behind the platform's back: a byte of the first package on disk, of the second in the
          // bucket (its stored checksum kept: only reading the bytes tells), of the third on tape.
          const before = yield* archiveCopies
          const onDisk = copyOf(before, pkgs[0].packageId, "cologne-archive")
          const inBucket = copyOf(before, pkgs[1].packageId, "cologne-archive-s3")
          const onTape = copyOf(before, pkgs[2].packageId, "cologne-archive-tape")
          yield* flipByte(path.join(dir, "locations", "cologne-archive", onDisk.path))
          yield* rotInBucket(client, bucket, `${prefix}${inBucket.path}`)
          yield* flipByteOnTape(path.join(dir, "locations", "cologne-archive-tape", "library"), originals.get(pkgs[2].packageId)!)
          // One cycle later every copy is due.
          for (const c of before) yield* verifiedDaysAgo(c.id, 31)

          const bad = [onDisk, inBucket, onTape]
          const repaired = Effect.map(archiveCopies, (copies) => bad.every((b) => copies.find((c) => c.id === b.id)?.status === "DELETED"))
          yield* runSitesUntil(
            [["cologne", [Audit.stage, Repair.stage]]],
            Effect.zipWith(repaired, allGood(pkgs.length), (a, b) => a && b),
            180_000
          )
          for (const b of bad) {
            const [found] = yield* findingEvents(b.id, "CORRUPT")
            assert.strictEqual(found?.details.by, "audit", `${b.location}: found by the audit`)
            const [fixed] = yield* findingEvents(b.id, "DELETED")
            assert.strictEqual((fixed?.details as { action?: string }).action, "repaired", `${b.location}: repaired`)
          }
          // Every copy was read again within the cycle, the repaired ones included.
          const after = yield* sql<{ n: number }>`
          select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
          where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at > now() - interval '30 days'`
          assert.strictEqual(after[0].n, pkgs.length * 3)

          // Staging returns what was filed.
          const req = yield* requestStaging("sci-integrity", pkgs.map((p) => p.eou.id))
          yield* runSitesUntil([["cologne", [Staging.stage]]], req.completed, 120_000)
          const staged = yield* Staging.stagedFiles(req.id)
          const filed = pkgs.flatMap((p) => p.files)
          assert.strictEqual(staged.length, filed.length)
          for (const f of filed) {
            const s = staged.find((x) => x.rawDataFileId === f.id)
            assert.isDefined(s, `${f.relativePath} staged`)
            assert.strictEqual(yield* Effect.promise(() => sha256File(s!.path)), f.checksum, `${f.relativePath} byte-identical`)
          }

          // Every copy of the first package rots; its staged files are gone (as cleanup leaves them).
          const now = yield* archiveCopies
          const firstCopies = now.filter((c) => c.packageId === pkgs[0].packageId && c.status === "PRESENT")
          assert.strictEqual(firstCopies.length, 3)
          yield* flipByte(path.join(dir, "locations", "cologne-archive", copyOf(now, pkgs[0].packageId, "cologne-archive").path))
          yield* rotInBucket(client, bucket, `${prefix}${copyOf(now, pkgs[0].packageId, "cologne-archive-s3").path}`, 1 / 3)
          yield* flipByteOnTape(path.join(dir, "locations", "cologne-archive-tape", "library"), originals.get(pkgs[0].packageId)!)
          for (const c of firstCopies) yield* verifiedDaysAgo(c.id, 31)
          yield* sql`update physical_copy set status = 'DELETED' where status = 'STAGED'`
          yield* Effect.promise(() => fs.rm(path.join(dir, "locations", "cologne-processing"), { recursive: true, force: true }))
          const allCorrupt = Effect.map(
            archiveCopies,
            (copies) => firstCopies.every((f) => copies.find((c) => c.id === f.id)?.status === "CORRUPT")
          )
          yield* runSitesUntil([["cologne", [Audit.stage, Repair.stage]]], allCorrupt, 180_000)
          const below = yield* Repair.belowTarget(3)
          assert.include(below.map((p) => p.id), pkgs[0].packageId)

          const lost = yield* requestStaging("sci-integrity-2", [pkgs[0].eou.id])
          const ended = Effect.map(
            sql<{ status: string }>`select status::text as status from staging_request where id = ${lost.id}`,
            ([r]) => r.status === "failed" || r.status === "completed"
          )
          yield* runSitesUntil([["cologne", [Staging.stage]]], ended, 120_000)
          const [row] = yield* sql<
            { status: string; errorMessage: string }
          >`select status::text as status, error_message from staging_request where id = ${lost.id}`
          assert.strictEqual(row.status, "failed")
          assert.include(row.errorMessage, `package ${pkgs[0].packageId} has no good archive copy left`)
          assert.include(row.errorMessage, "CORRUPT")
          const [pkgRow] = yield* sql<{ errorMessage: string | null }>`select error_message from raw_data_package where id = ${
            pkgs[0].packageId
          }`
          assert.include(pkgRow.errorMessage ?? "", "no good archive copy left")
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    480_000
  )
})
