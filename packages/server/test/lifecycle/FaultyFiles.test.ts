/**
 * A file packaging found corrupt or missing at its SOURCE path is settled by an operator, through
 * the real filing code and the real packaging stage: once its bytes are back, a recheck files it
 * again and packaging packages it; once they are lost for good, giving it up records the loss and
 * releases its path for a new filing. Neither touches the bytes at the path, and anything else
 * (a file that is fine, an unknown one, one given up already) is refused and changes nothing.
 */
import { type ApiSecurity, Checksum, type Ids } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Filing from "../../src/http/Filing.js"
import * as FaultyFiles from "../../src/lifecycle/FaultyFiles.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { topologyFrom } from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"

const admin: ApiSecurity.Principal = {
  accountId: randomUUID() as Ids.AccountId,
  name: "admin",
  role: "admin",
  instrumentIds: [],
  programIds: []
}

const sha256 = (bytes: Uint8Array) => Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))

const stateOf = (fileId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ state: string }>`select state::text as state from raw_data_file where id = ${fileId}`)
    .pipe(
      Effect.map((rows) => rows[0]?.state)
    )

describe("files packaging found corrupt or missing", () => {
  it.scopedLive(
    "are filed again once their bytes are back, or given up as lost with their path released; anything else is refused",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const source = topology.sites[0].locations.find((l) => l.type === "SOURCE")!
        const root = source.driver.root as string
        const scan = `scan-${randomBytes(3).toString("hex")}`
        const good = randomBytes(40_000)
        const restorable = randomBytes(30_000)
        const lost = randomBytes(20_000)
        for (const [name, bytes] of [["good.fits", good], ["restorable.fits", restorable]] as const) {
          yield* Effect.promise(async () => {
            await fs.mkdir(path.join(root, scan), { recursive: true })
            await fs.writeFile(path.join(root, scan, name), bytes)
          })
        }
        // restorable.fits is damaged before packaging reads it; lost.fits never reaches the disk.
        const damaged = Buffer.from(restorable)
        damaged[15_000] ^= 0xff
        yield* Effect.promise(() => fs.writeFile(path.join(root, scan, "restorable.fits"), damaged))
        const filed = yield* Filing.fileObservation(admin, {
          id: randomUUID(),
          obsUnitId: obs.obsUnit.id,
          startAt: new Date("2026-05-01T03:00:00Z"),
          endAt: new Date("2026-05-01T04:00:00Z"),
          sourceLocation: source.name,
          files: [
            { id: randomUUID(), module: "280GHz", relativePath: `${scan}/good.fits`, sizeBytes: good.length, checksum: sha256(good) },
            {
              id: randomUUID(),
              module: "280GHz",
              relativePath: `${scan}/restorable.fits`,
              sizeBytes: restorable.length,
              checksum: sha256(restorable)
            },
            { id: randomUUID(), module: "280GHz", relativePath: `${scan}/lost.fits`, sizeBytes: lost.length, checksum: sha256(lost) }
          ]
        } as never)
        const [goodFile, restorableFile, lostFile] = filed.files.map((f) => f.id)

        // Packaging packages the good file and marks the others, detached from the package.
        const marked = Effect.all([stateOf(goodFile!), stateOf(restorableFile!), stateOf(lostFile!)]).pipe(
          Effect.map((s) => s.join() === "packaged,corrupt,missing")
        )
        yield* runUntil([["chile", [Packaging.stage]]], marked).pipe(Effect.provide(policyLayer(topology)))

        // Refused, changing nothing: a file that is fine, an unknown one.
        const notFaulty = yield* Effect.flip(FaultyFiles.recheck(goodFile!, "operator", undefined))
        assert.strictEqual(notFaulty._tag, "FaultyFileRefused")
        assert.include(notFaulty.message, "is packaged: only a file packaging found corrupt or missing can be rechecked")
        const unknown = yield* Effect.flip(FaultyFiles.giveUp(randomUUID(), "operator", "gone"))
        assert.strictEqual(unknown._tag === "FaultyFileRefused" && unknown.reason, "NotFound")
        assert.strictEqual(yield* stateOf(goodFile!), "packaged")

        // The path of a faulty file is held: nothing new is filed under it.
        const other = randomBytes(10_000)
        const fileAgain = (relativePath: string) =>
          Filing.fileObservation(admin, {
            id: randomUUID(),
            obsUnitId: obs.obsUnit.id,
            startAt: new Date("2026-05-02T03:00:00Z"),
            endAt: new Date("2026-05-02T04:00:00Z"),
            sourceLocation: source.name,
            files: [{ id: randomUUID(), module: "280GHz", relativePath, sizeBytes: other.length, checksum: sha256(other) }]
          } as never)
        const held = yield* Effect.flip(fileAgain(`${scan}/lost.fits`))
        assert.strictEqual((held as { reason?: string }).reason, "PathHeld")

        // The instrument puts restorable.fits back; the operator rechecks it and packaging packages it.
        yield* Effect.promise(() => fs.writeFile(path.join(root, scan, "restorable.fits"), restorable))
        const rechecked = yield* FaultyFiles.recheck(restorableFile!, "operator", "rewritten from the instrument's spool")
        assert.strictEqual(rechecked.state, "filed")
        const twice = yield* Effect.flip(FaultyFiles.recheck(restorableFile!, "operator", undefined))
        assert.include(twice.message, "is filed")
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(stateOf(restorableFile!), (s) => s === "packaged")).pipe(
          Effect.provide(policyLayer(topology))
        )
        const [packaged] = yield* sql<{ status: string; checksum: string }>`
        select c.status::text as status, c.checksum from physical_copy c where c.raw_data_file_id = ${restorableFile!}`
        assert.deepStrictEqual([packaged!.status, packaged!.checksum], ["PRESENT", sha256(restorable)])

        // lost.fits never comes back: the operator gives it up; it stays missing, the event says who and why, the path is free.
        const givenUp = yield* FaultyFiles.giveUp(lostFile!, "operator", "the acquisition computer's disk failed")
        assert.strictEqual(givenUp.state, "missing")
        assert.strictEqual(yield* stateOf(lostFile!), "missing")
        const [event] = yield* sql<{ actor: string; details: { action: string; reason: string } }>`
        select actor, details from event_log where entity_id = ${lostFile!} and details->>'action' = 'given up as lost'`
        assert.deepStrictEqual([event!.actor, event!.details.reason], ["operator", "the acquisition computer's disk failed"])
        const again = yield* Effect.flip(FaultyFiles.giveUp(lostFile!, "operator", "again"))
        assert.include(again.message, "was given up already")
        const refiled = yield* fileAgain(`${scan}/lost.fits`)
        assert.strictEqual(refiled.files[0]!.state, "filed")
      }).pipe(Effect.provide(layer)),
    { timeout: 180_000 }
  )
})
