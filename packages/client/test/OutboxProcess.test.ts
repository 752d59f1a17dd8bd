import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { waitUntil } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { createClient, Outbox } from "../src/index.js"
import {
  clientProcess,
  freePort,
  freshDatabase,
  type Proc,
  receivedIds,
  startServer,
  stopServer,
  tempDir,
  waitOutput
} from "./processes.js"

const dirs: Array<string> = []
const procs: Array<Proc> = []
let serverDir: string
let database: Awaited<ReturnType<typeof freshDatabase>>
beforeAll(async () => {
  serverDir = await tempDir("ccat-client-server-")
  dirs.push(serverDir)
  database = await freshDatabase()
})
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL")
  await Promise.all(procs.map((p) => p.exited))
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
  await database?.drop()
})

const track = (p: Proc) => (procs.push(p), p)
const outboxDir = async () => {
  const dir = await tempDir("ccat-client-outbox-")
  dirs.push(dir)
  return path.join(dir, "outbox")
}

/** Puts the outbox entry id into the URL so the server's request log shows each delivery. */
const tagDeliveries = HttpClient.mapRequest((request: HttpClientRequest.HttpClientRequest) =>
  request.headers["idempotency-key"] === undefined
    ? request
    : HttpClientRequest.setUrlParam(request, "outboxItem", request.headers["idempotency-key"])
)

describe("the filing outbox against the real server", () => {
  it("delivers in order, holds filings while the server is stopped, and delivers them when it is back", async () => {
    const port = await freePort()
    let server = track(await startServer(port, serverDir, database.url))
    const ccat = await createClient({
      baseUrl: `http://127.0.0.1:${port}`,
      outboxDir: await outboxDir(),
      outboxRetry: { base: "50 millis", cap: "300 millis" },
      transformClient: tagDeliveries
    })
    try {
      expect((await ccat.health()).status).toBe("ok")
      const first: Array<string> = []
      for (let n = 0; n < 10; n++) {
        const filed = await ccat.file("system", "health", undefined, { key: `obs-${n}` })
        if (filed.delivery === "queued") first.push(filed.entry.id)
      }
      expect(await ccat.outbox.flush(20_000)).toBe(true)
      await waitUntil("the first filings in the server's request log", () => receivedIds(server).length >= first.length, 10_000)
      expect(receivedIds(server)).toEqual(first)

      await stopServer(server)
      const second: Array<string> = []
      for (let n = 10; n < 15; n++) {
        const filed = await ccat.file("system", "health", undefined, { key: `obs-${n}` })
        if (filed.delivery === "queued") second.push(filed.entry.id)
      }
      await new Promise((r) => setTimeout(r, 1000))
      const waiting = await ccat.outbox.status()
      expect(waiting.pending).toBe(5)
      expect(waiting.inFlight?.entry.key).toBe("obs-10")
      expect(waiting.inFlight?.attempts).toBeGreaterThan(1)
      expect(waiting.lastError?.verdict).toBe("Transient")

      server = track(await startServer(port, serverDir, database.url))
      expect(await ccat.outbox.flush(30_000)).toBe(true)
      await waitUntil("the second filings in the server's request log", () => receivedIds(server).length >= second.length, 10_000)
      expect(receivedIds(server)).toEqual(second)
      expect((await ccat.outbox.status()).delivered).toBe(15)
    } finally {
      await ccat.close()
      await stopServer(server)
    }
  })

  it("keeps every acknowledged item readable when a client is SIGKILLed in the middle of appends", async () => {
    const dir = await outboxDir()
    let stored = 0
    for (const delay of [0, 7, 23]) {
      const spammer = track(clientProcess({ OUTBOX_DIR: dir, SPAM_BYTES: String(256 * 1024) }))
      await waitOutput(spammer, /^durable 2$/m)
      await new Promise((r) => setTimeout(r, delay))
      spammer.child.kill("SIGKILL")
      await spammer.exited
      const told = Math.max(...[...spammer.output().matchAll(/^durable (\d+)$/gm)].map((m) => Number(m[1]) + 1))
      const items = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        const outbox = yield* Outbox.make({ directory: dir, schema: Schema.String })
        return (yield* outbox.status).pending
      })))
      // every item it was told about is there; at most the one being written when killed is extra
      expect(items).toBeGreaterThanOrEqual(stored + told)
      expect(items).toBeLessThanOrEqual(stored + told + 1)
      stored = items
    }
    // and they all decode, whole and in order
    const letters = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const seen: Array<string> = []
      const outbox = yield* Outbox.make({
        directory: dir,
        schema: Schema.String,
        deliver: (s: string, e) => Effect.sync(() => seen.push(`${e.key}:${s.length}:${s[0]}`))
      })
      yield* outbox.flush("20 seconds")
      return seen
    })))
    expect(letters.length).toBe(stored)
    for (const line of letters) {
      const [key, length, digit] = line.split(":")
      expect(Number(length)).toBe(256 * 1024)
      expect(digit).toBe(String(Number(key) % 10))
    }
  })

  it("lets one process drain an outbox: a second one fails clearly, or waits for the lock", async () => {
    const port = await freePort()
    const env = { OUTBOX_DIR: await outboxDir(), BASE_URL: `http://127.0.0.1:${port}` }
    const holder = track(clientProcess({ ...env, COUNT: "3" }))
    await waitOutput(holder, /^filed$/m)

    const refused = track(clientProcess(env))
    expect(await refused.exited).toBe(2)
    expect(refused.output()).toMatch(new RegExp(`failed OutboxError: .*Locked: in use by process ${holder.child.pid}`))

    const waiting = track(clientProcess({ ...env, LOCK_WAIT_MS: "30000" }))
    await new Promise((r) => setTimeout(r, 1500))
    expect(waiting.output()).not.toMatch(/open/)
    holder.child.kill("SIGTERM")
    expect(await holder.exited).toBe(0)
    await waitOutput(waiting, /^open pending=3$/m)
    waiting.child.kill("SIGKILL")
  })
})
