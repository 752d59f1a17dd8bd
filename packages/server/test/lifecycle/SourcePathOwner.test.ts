/**
 * One owner per SOURCE path, through the real filing code and the real lifecycle: an instrument
 * that reuses a path for a new observation while the old file still holds it is refused and loses
 * nothing; bytes written under a packaged path behind the platform's back are never deleted by
 * cleanup (the copy is marked CORRUPT and kept) until an operator releases the path; once a
 * file's SOURCE copy is deleted after archiving, its path takes a new filing.
 */
import { type ApiSecurity, Checksum, type Ids } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Filing from "../../src/http/Filing.js"
import * as SourcePaths from "../../src/lifecycle/SourcePaths.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import { editLocations, topologyFrom } from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"

const admin: ApiSecurity.Principal = {
  accountId: randomUUID() as Ids.AccountId,
  name: "admin",
  role: "admin",
  instrumentIds: [],
  programIds: []
}

const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

/** Writes bytes at the SOURCE root under `relativePath`; returns their checksum. */
const writeAt = (root: string, relativePath: string, bytes: Uint8Array) =>
  Effect.promise(async () => {
    const file = path.join(root, relativePath)
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.writeFile(file, bytes)
    return Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))
  })

/** Files a closed (or open) observation with one file at `relativePath`, as an instrument would through the API. */
const file = (
  obs: Effect.Effect.Success<typeof observatory>,
  source: string,
  relativePath: string,
  checksum: string,
  sizeBytes: number,
  closed: boolean
) =>
  Filing.fileObservation(admin, {
    id: randomUUID(),
    obsUnitId: obs.obsUnit.id,
    startAt: new Date("2026-05-01T03:00:00Z"),
    ...(closed ? { endAt: new Date("2026-05-01T04:00:00Z") } : {}),
    sourceLocation: source,
    files: [{ id: randomUUID(), module: "280GHz", relativePath, sizeBytes, checksum }]
  } as never)

const copyStatus = (fileId: string, location: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string }>`
      select c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_file_id = ${fileId} and l.name = ${location} order by c.created_at desc limit 1`).pipe(
    Effect.map((rows) => rows[0]?.status)
  )

describe("one owner per SOURCE path", () => {
  it.scopedLive(
    "a reused path is refused while held, a changed file is never deleted, a released path takes a new filing",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(
          dir,
          (raw) =>
            editLocations(
              raw,
              (
                l
              ) => (l.type === "LONG_TERM_ARCHIVE"
                ? l
                : { ...l, retention: { minAgeSinceArchived: "0 seconds", usageThresholdPercent: 0 } })
            )
        )
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const sourceConfig = topology.sites[0].locations.find((l) => l.type === "SOURCE")!
        const root = sourceConfig.driver.root as string
        const reused = `scan-${randomBytes(3).toString("hex")}/det0001.fits`
        const kept = `scan-${randomBytes(3).toString("hex")}/det0002.fits`

        // Observation A files two paths and is closed.
        const aBytes = randomBytes(50_000)
        const aSum = yield* writeAt(root, reused, aBytes)
        const keptSum = yield* writeAt(root, kept, randomBytes(20_000))
        const a = yield* file(obs, sourceConfig.name, reused, aSum, aBytes.length, true)
        const aKept = yield* file(obs, sourceConfig.name, kept, keptSum, 20_000, true)
        const aFile = a.files[0].id
        const keptFile = aKept.files[0].id

        // A is packaged; the SOURCE copies keep the identity their files had when read.
        yield* runUntil([["chile", Stages.all]], Effect.map(copyStatus(aFile, sourceConfig.name), (s) => s === "PRESENT")).pipe(
          Effect.provide(policyLayer(topology))
        )
        const [identity] = yield* sql<{ identity: string | null }>`select identity from physical_copy where raw_data_file_id = ${aFile}`
        assert.match(identity.identity ?? "", /^disk:/)

        // The instrument writes new bytes under the same path and files observation B with them: refused, nothing written.
        const bBytes = randomBytes(50_000)
        const bSum = yield* writeAt(root, reused, bBytes)
        const before = yield* sql<
          { n: number }
        >`select (select count(*) from raw_data_file)::int + (select count(*) from executed_obs_unit)::int as n`
        const refused = yield* Effect.flip(file(obs, sourceConfig.name, reused, bSum, bBytes.length, false))
        assert.strictEqual(refused._tag, "Conflict")
        assert.strictEqual((refused as { reason?: string }).reason, "PathHeld")
        assert.include(refused.message, aFile)
        const after = yield* sql<
          { n: number }
        >`select (select count(*) from raw_data_file)::int + (select count(*) from executed_obs_unit)::int as n`
        assert.deepStrictEqual(after, before)

        // A is archived and cleaned up: the untouched file goes, the changed one is kept and marked.
        yield* runUntil(
          everySite,
          Effect.zipWith(
            copyStatus(keptFile, sourceConfig.name),
            copyStatus(aFile, sourceConfig.name),
            (k, r) => k === "DELETED" && r === "CORRUPT"
          ),
          120_000
        ).pipe(Effect.provide(policyLayer(topology)))
        const onDisk = yield* Effect.promise(() => fs.readFile(path.join(root, reused)))
        assert.isTrue(Buffer.compare(onDisk, bBytes) === 0, "the bytes written after packaging are still there")
        const [event] = yield* sql<{ details: { reason: string; detail: string } }>`
        select e.details from event_log e join physical_copy c on c.id = e.entity_id
        where c.raw_data_file_id = ${aFile} and e.to_state = 'CORRUPT'`
        assert.strictEqual(event.details.reason, "changed since recorded")
        // The changed path is still A's (its copy was not deleted): B is still refused.
        const still = yield* Effect.flip(file(obs, sourceConfig.name, reused, bSum, bBytes.length, false))
        assert.strictEqual((still as { reason?: string }).reason, "PathHeld")
        // The operator releases it (A is ARCHIVED): the copy is given up, the bytes stay, B may be filed.
        const [sourceCopy] = yield* sql<
          { id: string }
        >`select id from physical_copy where raw_data_file_id = ${aFile} and status = 'CORRUPT'`
        const [keptCopy] = yield* sql<{ id: string }>`select id from physical_copy where raw_data_file_id = ${keptFile}`
        const notThis = yield* Effect.flip(SourcePaths.release(keptCopy.id, "operator", "not changed"))
        assert.include(notThis.message, "is DELETED: only a SOURCE copy found changed or gone")
        const released = yield* SourcePaths.release(sourceCopy.id, "operator", "the new bytes are observation B's; filed again below")
        assert.strictEqual(released.path, reused)
        const onDiskAfter = yield* Effect.promise(() => fs.readFile(path.join(root, reused)))
        assert.isTrue(Buffer.compare(onDiskAfter, bBytes) === 0, "releasing leaves the bytes where they are")
        const b = yield* file(obs, sourceConfig.name, reused, bSum, bBytes.length, true)
        assert.strictEqual(b.files[0].relativePath, reused)
        const [gone] = yield* sql<{ details: { action: string; bytesKept: boolean }; actor: string }>`
        select details, actor from event_log where entity_id = ${sourceCopy.id} and to_state = 'DELETED'`
        assert.deepStrictEqual([gone.details.action, gone.details.bytesKept, gone.actor], ["source path released", true, "operator"])

        // The released path takes a new filing, and its new file is packaged like any other.
        const nBytes = randomBytes(30_000)
        const nSum = yield* writeAt(root, kept, nBytes)
        const n = yield* file(obs, sourceConfig.name, kept, nSum, nBytes.length, true)
        assert.strictEqual(n.files[0].state, "filed")
        yield* runUntil([["chile", Stages.all]], Effect.map(copyStatus(n.files[0].id, sourceConfig.name), (s) => s === "PRESENT")).pipe(
          Effect.provide(policyLayer(topology))
        )
      }).pipe(Effect.provide(layer)),
    { timeout: 240_000 }
  )
})
