/**
 * The outbox on the real filing endpoints: the reference server (`ccat serve`) on a fresh,
 * migrated ops-db, an instrument token, and client processes that are killed and restarted.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { OpsDb } from "@ccat/core/node"
import { Fixtures, TestDatabase, waitUntil } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import { randomBytes, randomUUID } from "node:crypto"
import * as path from "node:path"
import * as Tokens from "../../server/src/auth/Tokens.js"
import { createClient } from "../src/index.js"
import { clientProcess, freePort, type Proc, startServer, stopServer, tempDir, waitOutput } from "./processes.js"

let scope: Scope.CloseableScope
let sql: <A>(effect: Effect.Effect<A, unknown, SqlClient.SqlClient>) => Promise<A>
let databaseUrl: string
let world: Fixtures.World
let token: string
let dir: string
const procs: Array<Proc> = []

beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  const db = await Effect.runPromise(Scope.extend(TestDatabase.migratedDatabase, scope))
  databaseUrl = Redacted.value(db.url)
  const layer = PgClient.layer(OpsDb.clientConfig(db.url))
  const runtime = await Effect.runPromise(Scope.extend(Layer.toRuntime(layer), scope))
  sql = (effect) => Effect.runPromise(Effect.provide(effect, runtime))
  world = await sql(Fixtures.world)
  token = await sql(Effect.gen(function* () {
    const account = yield* Tokens.ensureAccount({ name: `chai-${Fixtures.suffix()}`, role: "instrument" })
    yield* Tokens.grantInstrument(account.id, world.instrument.id)
    return (yield* Tokens.issue({ accountId: account.id })).token
  }))
  dir = await tempDir("ccat-client-filing-")
}, 120_000)

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL")
  await Promise.all(procs.map((p) => p.exited))
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await fs.rm(dir, { recursive: true, force: true })
})

const track = (p: Proc) => (procs.push(p), p)

const serve = async (port: number) => track(await startServer(port, dir, databaseUrl))

/** The observations of this test's ObsUnit, in the order the server stored them. */
const storedObservations = () =>
  sql(Effect.gen(function* () {
    const q = yield* SqlClient.SqlClient
    return yield* q<{ id: string; files: number }>`
      select e.id, (select count(*)::int from raw_data_file f where f.executed_obs_unit_id = e.id) as files
      from executed_obs_unit e where e.obs_unit_id = ${world.obsUnit.id} order by e.created_at, e.start_at`
  }))

const posts = (server: Proc, suffix: string) =>
  [...server.output().matchAll(/http\.method: POST\s+http\.url: (\/api\/v1\/observations[^\s?]*)/g)].filter((m) => m[1]!.endsWith(suffix))
    .length

describe("the outbox on the real filing endpoints", () => {
  it("files 100 observations with the server stopped, survives a killed client, and the ops-db gets each once, in order", async () => {
    const port = await freePort()
    const env = {
      OUTBOX_DIR: path.join(dir, "outbox-100"),
      BASE_URL: `http://127.0.0.1:${port}`,
      TOKEN: token,
      OBS_UNIT_ID: world.obsUnit.id,
      SOURCE: world.source.name
    }
    const first = track(clientProcess({ ...env, COUNT: "100" }))
    await waitOutput(first, /^filed$/m, 60_000)
    first.child.kill("SIGKILL")
    await first.exited
    const filed = [...first.output().matchAll(/^observation (\d+) (\S+)$/gm)].map((m) => m[2]!)
    expect(filed).toHaveLength(100)
    expect(await storedObservations()).toEqual([])

    const second = track(clientProcess({ ...env, FLUSH: "1" }))
    await waitOutput(second, /^open pending=200$/m)
    const server = await serve(port)
    try {
      expect(await second.exited).toBe(0)
      const [, status] = await waitOutput(second, /^drained (.*)$/m)
      expect(JSON.parse(status!)).toMatchObject({ pending: 0, delivered: 200, deadLetters: 0 })
      const stored = await storedObservations()
      expect(stored.map((o) => o.id)).toEqual(filed)
      expect(stored.every((o) => o.files === 1)).toBe(true)
      // each arrived once: one filing and one addition per observation reached the server
      await waitUntil(
        "200 filings in the server's request log",
        () => posts(server, "/observations") + posts(server, "/files") >= 200,
        10_000
      )
      await new Promise((r) => setTimeout(r, 300))
      expect(posts(server, "/observations")).toBe(100)
      expect(posts(server, "/files")).toBe(100)
    } finally {
      await stopServer(server)
    }
  })

  it("moves a conflicting re-file to the dead letters with the server's reason and delivers what follows; a refused token holds the queue", async () => {
    const port = await freePort()
    const server = await serve(port)
    const ccat = await createClient({
      baseUrl: `http://127.0.0.1:${port}`,
      token,
      outboxDir: path.join(dir, "outbox-conflict")
    })
    try {
      const observation = { id: randomUUID(), obsUnitId: world.obsUnit.id, startAt: new Date("2026-11-26T03:00:00Z") }
      const next = { id: randomUUID(), obsUnitId: world.obsUnit.id, startAt: new Date("2026-11-26T04:00:00Z") }
      await ccat.fileObservation(observation)
      await ccat.fileObservation(observation) // a repeat: idempotent, answered with the stored record
      await ccat.fileObservation({ ...observation, startAt: new Date("2026-11-26T03:00:01Z") }, { key: "the conflicting one" })
      await ccat.addFiles(observation.id, {
        sourceLocation: world.source.name,
        files: [{
          id: randomUUID(),
          module: "280GHz",
          relativePath: "late/det0000.fits",
          sizeBytes: 1,
          checksum: `sha256:${randomBytes(32).toString("hex")}`
        }]
      })
      await ccat.fileObservation(next)
      expect(await ccat.outbox.flush(30_000)).toBe(true)

      const dead = await ccat.outbox.deadLetters()
      expect(dead).toHaveLength(1)
      expect(dead[0]).toMatchObject({ key: "the conflicting one", status: 409 })
      expect(dead[0]!.reason).toContain("startAt")
      expect(dead[0]!.item).toMatchObject({ group: "observations", endpoint: "file" })
      const status = await ccat.outbox.status()
      expect(status).toMatchObject({ pending: 0, delivered: 4, deadLetters: 1 })
      const stored = await storedObservations()
      expect(stored.filter((o) => o.id === observation.id)).toEqual([{ id: observation.id, files: 1 }])
      expect(stored.some((o) => o.id === next.id)).toBe(true)

      // without an outbox the same conflict is a rejected Promise with the contract's error
      const direct = await createClient({ baseUrl: `http://127.0.0.1:${port}`, token })
      const error = await direct.fileObservation({ ...observation, startAt: new Date("2026-11-26T03:00:02Z") }).then(
        () => undefined,
        (e) => e
      )
      expect(error).toMatchObject({ _tag: "Conflict", reason: "DifferentContent", fields: ["startAt"] })
      const again = await direct.fileObservation(observation)
      expect(again.delivery === "sent" && again.result.observation.id).toBe(observation.id)
      await direct.close()

      // a token the server refuses holds the queue (nothing is dead-lettered) until it is fixed
      const unauthorized = await createClient({
        baseUrl: `http://127.0.0.1:${port}`,
        token: "ccat_not-a-real-token",
        outboxDir: path.join(dir, "outbox-bad-token"),
        outboxRetry: { base: "50 millis", cap: "200 millis" }
      })
      await unauthorized.fileObservation({ id: randomUUID(), obsUnitId: world.obsUnit.id, startAt: new Date("2026-11-26T05:00:00Z") })
      expect(await unauthorized.outbox.flush(1500)).toBe(false)
      const held = await unauthorized.outbox.status()
      expect(held).toMatchObject({ pending: 1, deadLetters: 0, lastError: { verdict: "Unauthorized", status: 401 } })
      expect(held.inFlight?.attempts).toBeGreaterThan(1)
      await unauthorized.close()
    } finally {
      await ccat.close()
      await stopServer(server)
    }
  })

  it("a client killed in the middle of delivering redelivers at most the filing in flight, and the ops-db has each once", async () => {
    const port = await freePort()
    const server = await serve(port)
    const env = {
      OUTBOX_DIR: path.join(dir, "outbox-midway"),
      BASE_URL: `http://127.0.0.1:${port}`,
      TOKEN: token,
      OBS_UNIT_ID: world.obsUnit.id,
      SOURCE: world.source.name
    }
    const sentSoFar = () => posts(server, "/observations") + posts(server, "/files")
    try {
      const first = track(clientProcess({ ...env, COUNT: "50" }))
      await waitOutput(first, /^filed$/m, 60_000)
      const deadline = Date.now() + 60_000
      while (sentSoFar() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      first.child.kill("SIGKILL")
      await first.exited
      const atKill = sentSoFar()
      expect(atKill).toBeLessThan(100) // it really was killed midway
      const filed = [...first.output().matchAll(/^observation (\d+) (\S+)$/gm)].map((m) => m[2]!)
      expect(filed).toHaveLength(50)

      const second = track(clientProcess({ ...env, FLUSH: "1" }))
      expect(await second.exited).toBe(0)
      const ours = new Set(filed)
      const stored = (await storedObservations()).filter((o) => ours.has(o.id))
      expect(stored.map((o) => o.id)).toEqual(filed)
      expect(stored.every((o) => o.files === 1)).toBe(true)
      // 100 filings; a request the killed process had in flight may have been sent again, idempotently
      await waitUntil("100 filings sent", () => sentSoFar() >= 100, 10_000)
      await new Promise((r) => setTimeout(r, 300))
      expect(sentSoFar()).toBeGreaterThanOrEqual(100)
      expect(sentSoFar()).toBeLessThanOrEqual(101)
    } finally {
      await stopServer(server)
    }
  })
})
