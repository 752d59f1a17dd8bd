/**
 * Filing through the real server on a real ops-db: an observation with a batch of files,
 * additions, closing, idempotent repeats, conflicting re-files, and every class of bad input,
 * each of which must leave the database exactly as it was.
 */
import { it } from "@effect/vitest"
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

const setup = Effect.gen(function* () {
  const world = yield* Fixtures.world.pipe(Effect.orDie)
  const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
  const client = yield* Harness.client(token)
  return { world, token, client }
})

const observation = (world: Fixtures.World, files: number, extra: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date("2026-05-01T03:00:00Z"),
  sourceLocation: world.source.name,
  files: Array.from({ length: files }, (_, i) => ({
    id: randomUUID(),
    module: i % 2 === 0 ? "280GHz" : "350GHz",
    relativePath: `scan-17/det${String(i).padStart(4, "0")}.fits`,
    sizeBytes: 1000 + i,
    checksum: sha()
  })),
  ...extra
})

it.layer(Harness.layer({ maxBodyBytes: 1024 * 1024 }), { timeout: 60_000 })("filing", (it) => {
  it.effect("files an observation with a batch of files, records their creation events, and answers a repeat with the stored record", () =>
    Effect.gen(function* () {
      const { client, world } = yield* setup
      const before = yield* Harness.counts()
      const request = observation(world, 50, { conditions: { pwvMm: 0.6 }, metadata: { scan: 17 } })
      const filed = yield* client.observations.file({ payload: request })
      expect(filed.observation.id).toBe(request.id)
      expect(filed.observation.status).toBe("in_progress")
      expect(filed.observation.endAt).toBeNull()
      expect(filed.files.map((f) => f.id)).toEqual(request.files.map((f) => f.id))
      expect(filed.files[1].instrumentModuleId).toBe(world.modules[1].id)
      expect(filed.files.every((f) => f.state === "filed" && f.sourceLocationId === world.source.id)).toBe(true)
      const after = yield* Harness.counts()
      expect(after.executed_obs_unit - before.executed_obs_unit).toBe(1)
      expect(after.raw_data_file - before.raw_data_file).toBe(50)
      // the observation's filing and each file's
      expect(after.event_log - before.event_log).toBe(51)
      const sql = yield* SqlClient.SqlClient
      const [filedEvent] = yield* sql<{ fromState: string | null; toState: string; actor: string }>`
        select from_state, to_state, actor from event_log where entity_kind = 'ExecutedObsUnit' and entity_id = ${request.id}`.pipe(
        Effect.orDie
      )
      expect(filedEvent).toMatchObject({ fromState: null, toState: "in_progress" })
      expect(filedEvent.actor).not.toBe("system")

      const again = yield* client.observations.file({ payload: request })
      expect(again.observation.createdAt).toEqual(filed.observation.createdAt)
      expect(again.files.map((f) => f.filedAt)).toEqual(filed.files.map((f) => f.filedAt))
      expect(yield* Harness.counts()).toEqual(after)
    }))

  it.effect("the same filing sent twice at once (a client retrying a slow request) is stored once and both get the stored record", () =>
    Effect.gen(function* () {
      const { client, world } = yield* setup
      const before = yield* Harness.counts()
      const request = observation(world, 200)
      const [a, b] = yield* Effect.all([client.observations.file({ payload: request }), client.observations.file({ payload: request })], {
        concurrency: 2
      })
      expect(a.files.map((f) => f.filedAt)).toEqual(b.files.map((f) => f.filedAt))
      const after = yield* Harness.counts()
      expect([
        after.executed_obs_unit - before.executed_obs_unit,
        after.raw_data_file - before.raw_data_file,
        after.event_log - before.event_log
      ]).toEqual([1, 200, 201])
    }))

  it.effect("a re-file with different content is a 409 naming the fields, and changes nothing", () =>
    Effect.gen(function* () {
      const { client, world } = yield* setup
      const request = observation(world, 3, { metadata: { scan: 1 } })
      yield* client.observations.file({ payload: request })
      const before = yield* Harness.counts()

      const other = yield* Effect.either(
        client.observations.file({ payload: { ...request, startAt: new Date("2026-05-01T03:00:01Z"), metadata: { scan: 2 } } })
      )
      expect(Either.isLeft(other) && other.left._tag).toBe("Conflict")
      if (Either.isLeft(other) && other.left._tag === "Conflict") {
        expect(other.left.reason).toBe("DifferentContent")
        expect(other.left.fields).toEqual(["startAt", "metadata"])
      }
      const changedFile = {
        ...request,
        files: [request.files[0], { ...request.files[1], sizeBytes: 7, checksum: sha() }, { ...request.files[2], id: randomUUID() }]
      }
      const fileConflict = yield* Effect.either(client.observations.file({ payload: changedFile }))
      expect(Either.isLeft(fileConflict) && fileConflict.left._tag === "Conflict" && fileConflict.left.fields).toEqual([
        "sizeBytes",
        "checksum"
      ])
      const samePath = { ...request, files: [{ ...request.files[2], id: randomUUID() }] }
      const pathConflict = yield* Effect.either(client.observations.file({ payload: samePath }))
      expect(Either.isLeft(pathConflict) && pathConflict.left._tag === "Conflict" && pathConflict.left.reason).toBe("DuplicatePath")
      expect(yield* Harness.counts()).toEqual(before)
    }))

  it.effect("adds files to an open observation, closes it, and then refuses new files but accepts repeats", () =>
    Effect.gen(function* () {
      const { client, world } = yield* setup
      const request = observation(world, 0)
      yield* client.observations.file({ payload: { ...request, files: undefined, sourceLocation: undefined } })
      const more = observation(world, 10).files
      const added = yield* client.observations.addFiles({
        path: { id: request.id as any },
        payload: { sourceLocation: world.source.name, files: more }
      })
      expect(added.files).toHaveLength(10)
      const repeat = yield* client.observations.addFiles({
        path: { id: request.id as any },
        payload: { sourceLocation: world.source.name, files: more.slice(0, 3) }
      })
      expect(repeat.files.map((f) => f.id)).toEqual(more.slice(0, 3).map((f) => f.id))

      const closed = yield* client.observations.close({
        path: { id: request.id as any },
        payload: { endAt: new Date("2026-05-01T04:00:00Z"), status: "completed", quality: "good" }
      })
      expect(closed.status).toBe("completed")
      expect(closed.quality).toBe("good")
      const closedAgain = yield* client.observations.close({
        path: { id: request.id as any },
        payload: { endAt: new Date("2026-05-01T04:00:00Z"), status: "completed" }
      })
      expect(closedAgain.updatedAt).toEqual(closed.updatedAt)
      const reclose = yield* Effect.either(
        client.observations.close({
          path: { id: request.id as any },
          payload: { endAt: new Date("2026-05-01T05:00:00Z"), status: "failed" }
        })
      )
      expect(Either.isLeft(reclose) && reclose.left._tag === "Conflict" && reclose.left.fields).toEqual(["endAt", "status"])

      const before = yield* Harness.counts()
      const lateFile = { ...observation(world, 1).files[0], relativePath: "late/after-close.fits" }
      const late = yield* Effect.either(
        client.observations.addFiles({ path: { id: request.id as any }, payload: { sourceLocation: world.source.name, files: [lateFile] } })
      )
      expect(Either.isLeft(late) && late.left._tag === "Conflict" && late.left.reason).toBe("Closed")
      const replay = yield* client.observations.addFiles({
        path: { id: request.id as any },
        payload: { sourceLocation: world.source.name, files: more }
      })
      expect(replay.files).toHaveLength(10)
      // The original filing, replayed after the close (it states no end), is still a repeat.
      const refile = yield* client.observations.file({ payload: { ...request, files: undefined, sourceLocation: undefined } })
      expect(refile.observation.status).toBe("completed")
      expect(yield* Harness.counts()).toEqual(before)
      const missing = yield* Effect.either(
        client.observations.addFiles({ path: { id: randomUUID() as any }, payload: { sourceLocation: world.source.name, files: more } })
      )
      expect(Either.isLeft(missing) && missing.left._tag).toBe("NotFound")
    }))

  it.effect("refuses each class of bad input with a clear error and leaves the database unchanged", () =>
    Effect.gen(function* () {
      const { token, world } = yield* setup
      const good = observation(world, 2)
      const file0 = good.files[0]
      const cases: Array<[string, unknown, number, string]> = [
        ["absolute path", { ...good, files: [{ ...file0, relativePath: "/etc/passwd" }] }, 400, "relative, not absolute"],
        ["dot-dot path", { ...good, files: [{ ...file0, relativePath: "scan/../../x" }] }, 400, ".. segment"],
        ["NUL in path", { ...good, files: [{ ...file0, relativePath: "scan/a\u0000b" }] }, 400, "NUL"],
        [
          "disk temporary name",
          { ...good, files: [{ ...file0, relativePath: "scan/.ccat-tmp-a.fits-0123456789ab" }] },
          400,
          "reserved for temporary files"
        ],
        [
          "transfer temporary name",
          { ...good, files: [{ ...file0, relativePath: ".scan.ccat-0a1b2c.part/a.fits" }] },
          400,
          "reserved for temporary files"
        ],
        ["overlong path", { ...good, files: [{ ...file0, relativePath: "a/".repeat(600) + "b" }] }, 400, "at most 1024 bytes"],
        ["negative size", { ...good, files: [{ ...file0, sizeBytes: -1 }] }, 400, "must not be negative"],
        ["fractional size", { ...good, files: [{ ...file0, sizeBytes: 1.5 }] }, 400, "whole number"],
        ["unknown algorithm", { ...good, files: [{ ...file0, checksum: "crc32:deadbeef" }] }, 400, "algorithm:hex"],
        ["short checksum", { ...good, files: [{ ...file0, checksum: "sha256:abcd" }] }, 400, "64 hex digits"],
        ["not a uuid", { ...good, id: "obs-1" }, 400, "UUID"],
        ["unknown obs unit", { ...good, obsUnitId: randomUUID() }, 422, "no ObsUnit"],
        ["unknown location", { ...good, sourceLocation: "nowhere" }, 422, "no data location named nowhere"],
        ["not a SOURCE location", { ...good, sourceLocation: world.chileBuffer.name }, 422, "a BUFFER location"],
        ["unknown module", { ...good, files: [{ ...file0, module: "999GHz" }] }, 422, "no module named 999GHz"],
        ["same path twice", { ...good, files: [file0, { ...good.files[1], relativePath: file0.relativePath }] }, 422, "appears twice"],
        ["end before start", { ...good, endAt: "2026-05-01T02:00:00Z" }, 422, "before it starts"],
        [
          "the manifest's name",
          { ...good, files: [{ ...file0, relativePath: "MANIFEST.ccat.json" }] },
          422,
          "reserved for the package manifest"
        ],
        [
          "a path that is another's folder",
          { ...good, files: [file0, { ...good.files[1], relativePath: `${file0.relativePath}/inner.fits` }] },
          422,
          "both a file and a folder"
        ],
        ["files without a location", { ...good, sourceLocation: undefined }, 422, "sourceLocation"]
      ]
      const before = yield* Harness.counts()
      for (const [name, body, status, text] of cases) {
        const r = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(body) })
        expect([name, r.status]).toEqual([name, status])
        expect([name, JSON.stringify(r.json)]).toEqual([name, expect.stringContaining(text)])
      }
      const malformed = yield* Harness.raw("POST", "/api/v1/observations", { token, body: '{"id": ' })
      expect(malformed.status).toBe(400)
      expect(malformed.json._tag).toBe("BadRequest")
      expect(malformed.json.message).toContain("not valid JSON")
      // A valid batch with one bad file in the middle is refused whole.
      const batch = observation(world, 20)
      batch.files[13] = { ...batch.files[13], module: "nope" }
      const partial = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(batch) })
      expect(partial.status).toBe(422)
      expect(partial.json.field).toBe("files[13].module")
      expect(yield* Harness.counts()).toEqual(before)
    }))

  it.effect("refuses a path that would be a file and a folder of one observation, whatever request filed the first, across modules", () =>
    Effect.gen(function* () {
      const { client, token, world } = yield* setup
      const request = observation(world, 0)
      const spec = (relativePath: string, module = "280GHz") => ({ id: randomUUID(), module, relativePath, sizeBytes: 1, checksum: sha() })
      yield* client.observations.file({ payload: { ...request, files: [spec("x/a"), spec("y/b/c.fits")] } })
      const before = yield* Harness.counts()
      const add = (files: ReadonlyArray<ReturnType<typeof spec>>) =>
        Harness.raw("POST", `/api/v1/observations/${request.id}/files`, {
          token,
          body: JSON.stringify({ sourceLocation: world.source.name, files })
        })
      for (
        const [name, files, field, text] of [
          [
            "inside a filed file",
            [spec("ok/1.fits"), spec("x/a/b", "350GHz")],
            "files[1].relativePath",
            "x/a, which the observation already has as a file"
          ],
          ["a filed folder", [spec("y/b")], "files[0].relativePath", "y/b is already a folder of the observation"],
          ["a filed folder's parent", [spec("y")], "files[0].relativePath", "already a folder"],
          ["the manifest", [spec("MANIFEST.ccat.json")], "files[0].relativePath", "reserved"]
        ] as const
      ) {
        const r = yield* add(files)
        expect([name, r.status, r.json.field]).toEqual([name, 422, field])
        expect([name, r.json.message]).toEqual([name, expect.stringContaining(text)])
      }
      // Deeper names beside a file, and a manifest's name below the top, are fine.
      const fine = yield* add([spec("x/ab"), spec("y/b/d.fits"), spec("sub/MANIFEST.ccat.json")])
      expect(fine.status).toBe(200)
      expect((yield* Harness.counts()).raw_data_file - before.raw_data_file).toBe(3)
    }))

  it.effect("a SOURCE path still held by another observation's file is a 409 naming the holder; once released, it takes a new file", () =>
    Effect.gen(function* () {
      const { client, token, world } = yield* setup
      const sql = yield* SqlClient.SqlClient
      const first = observation(world, 2)
      yield* client.observations.file({ payload: first })
      const holder = first.files[1]
      const before = yield* Harness.counts()
      const second = observation(world, 3)
      const r = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(second) })
      expect(r.status).toBe(409)
      expect(r.json.reason).toBe("PathHeld")
      expect(r.json.message).toContain(first.files[0].id)
      expect(yield* Harness.counts()).toEqual(before)
      // Another SOURCE location's same path is another path.
      const elsewhere = yield* Fixtures.world.pipe(Effect.orDie)
      const there = yield* Harness.raw("POST", "/api/v1/observations", {
        token: yield* Harness.tokenFor({ role: "instrument", instrumentIds: [elsewhere.instrument.id] }),
        body: JSON.stringify({
          ...observation(elsewhere, 1),
          files: [{ ...observation(elsewhere, 1).files[0], relativePath: holder.relativePath }]
        })
      })
      expect(there.status).toBe(200)
      // A repeat of the holder's own filing is still a repeat, not a conflict.
      expect((yield* client.observations.file({ payload: first })).files).toHaveLength(2)
      // The holder's SOURCE copy is deleted (cleanup releases the path in the same transaction): the path takes a new file.
      yield* sql`update raw_data_file set source_released_at = now() where id = ${holder.id}`
      const reuse = observation(world, 0)
      const reused = yield* client.observations.file({
        payload: { ...reuse, files: [{ ...second.files[0], relativePath: holder.relativePath }] }
      })
      expect(reused.files[0].relativePath).toBe(holder.relativePath)
      // Two filings of one free path at once: one wins, the other is refused.
      const free = `race/${randomUUID()}.fits`
      const racers = [observation(world, 0), observation(world, 0)].map((o) => ({
        ...o,
        files: [{ ...second.files[1], id: randomUUID(), relativePath: free }]
      }))
      const results = yield* Effect.all(racers.map((o) => Effect.either(client.observations.file({ payload: o }))), { concurrency: 2 })
      expect(results.filter(Either.isRight)).toHaveLength(1)
      const lost = results.find(Either.isLeft)!
      expect(Either.isLeft(lost) && lost.left._tag === "Conflict" && lost.left.reason).toBe("PathHeld")
    }))

  it.effect("answers 413 to a body over the limit, before reading it, and stores nothing", () =>
    Effect.gen(function* () {
      const { client, token, world } = yield* setup
      const before = yield* Harness.counts()
      const big = observation(world, 6000)
      const r = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(big) })
      expect(r.status).toBe(413)
      expect(r.json._tag).toBe("PayloadTooLarge")
      expect(r.json.limitBytes).toBe(1024 * 1024)
      // The derived client decodes it as the contract's error.
      const viaClient = yield* Effect.either(client.observations.file({ payload: { ...big, obsUnitId: world.obsUnit.id } as any }))
      expect(Either.isLeft(viaClient) && viaClient.left._tag).toBe("PayloadTooLarge")
      expect(yield* Harness.counts()).toEqual(before)
    }))
})
