import { assert, describe, it } from "@effect/vitest"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Outbox, RetryPolicy } from "../src/index.js"
import * as RecordLog from "../src/internal/RecordLog.js"

/** An item as an instrument would queue it: an observation, or files added to one. */
const Item = Schema.Struct({ n: Schema.Int, at: Schema.DateFromString })
type Item = typeof Item.Type

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-outbox-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const item = (n: number): Item => ({ n, at: new Date(Date.UTC(2026, 10, 26, 0, 0, n)) })

/** Real time passes while the outbox does real I/O, whatever the TestClock says. */
const until = (check: Effect.Effect<boolean>, what: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 500; i++) {
      if (yield* check) return
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
    }
    assert.fail(`timed out waiting for ${what}`)
  })

const transportError = new HttpClientError.RequestError({
  request: HttpClientRequest.get("http://127.0.0.1:1/api/v1/health"),
  reason: "Transport",
  description: "connect ECONNREFUSED"
})

class Conflict extends Schema.TaggedError<Conflict>()("Conflict", { fields: Schema.Array(Schema.String) }) {}

describe("Outbox", () => {
  it.scoped("keeps items across a reopen and delivers them in order, once each", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function* () {
        const outbox = yield* Outbox.make({ directory: dir, schema: Item })
        for (let n = 0; n < 5; n++) yield* outbox.enqueue(item(n), { key: `obs-${n}` })
        yield* outbox.enqueueAll([5, 6, 7].map((n) => ({ item: item(n) })))
        assert.strictEqual(yield* outbox.pending, 8)
      }))
      const seen: Array<Item> = []
      const outbox = yield* Outbox.make({ directory: dir, schema: Item, deliver: (i: Item) => Effect.sync(() => seen.push(i)) })
      assert.isTrue(yield* outbox.flush("10 seconds"))
      assert.deepStrictEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7].map(item))
      assert.strictEqual((yield* outbox.status).delivered, 8)
    }))

  it.scoped("retries transient failures with capped, jittered exponential backoff", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const attempts: Array<number> = []
      const outbox = yield* Outbox.make({
        directory: dir,
        schema: Item,
        retry: { base: "1 second", cap: "4 seconds" },
        attemptTimeout: "1 day",
        deliver: () =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            attempts.push(now)
            return attempts.length < 6 ? Effect.fail(transportError) : Effect.void
          })
      })
      yield* outbox.enqueue(item(1))
      yield* until(Effect.sync(() => attempts.length === 1), "the first attempt")
      while (attempts.length < 6) {
        const before = attempts.length
        // Move the clock exactly to the backoff's wake-up, once the outbox is really asleep
        // (between attempts it does real file I/O, which takes real time).
        const now = yield* Clock.currentTimeMillis
        const backoff = Effect.map(TestClock.sleeps(), Chunk.filter((at) => at > now && at < now + 60_000))
        yield* until(Effect.map(backoff, Chunk.isNonEmpty), "the outbox to back off")
        yield* TestClock.setTime(Chunk.unsafeHead(yield* backoff))
        yield* until(Effect.sync(() => attempts.length > before), "the next attempt")
      }
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!)
      const ceilings = [1000, 2000, 4000, 4000, 4000]
      gaps.forEach((gap, i) => {
        assert.isAtMost(gap, ceilings[i]!, `gap ${i}`)
        assert.isAtLeast(gap, ceilings[i]! / 2, `gap ${i}`)
      })
      assert.isTrue(yield* outbox.flush("5 seconds"))
      const status = yield* outbox.status
      assert.strictEqual(status.lastError?.verdict, "Transient")
      assert.strictEqual(status.delivered, 1)
    }))

  it.scoped("moves a refused item to the dead letters with its reason and goes on with the next", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const seen: Array<number> = []
      const outbox = yield* Outbox.make({
        directory: dir,
        schema: Item,
        deliver: (i: Item) => i.n === 1 ? Effect.fail(new Conflict({ fields: ["endTime"] })) : Effect.sync(() => seen.push(i.n)),
        judge: (e) => e instanceof Conflict ? { verdict: "Permanent", status: 409, reason: "differs in endTime" } : RetryPolicy.judge(e)
      })
      yield* outbox.enqueueAll([0, 1, 2].map((n) => ({ item: item(n), key: `obs-${n}` })))
      assert.isTrue(yield* outbox.flush("10 seconds"))
      assert.deepStrictEqual(seen, [0, 2])
      const dead = yield* outbox.deadLetters
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]!.key, "obs-1")
      assert.strictEqual(dead[0]!.status, 409)
      assert.strictEqual(dead[0]!.reason, "differs in endTime")
      assert.deepStrictEqual(dead[0]!.item, item(1))
      assert.strictEqual((yield* outbox.status).deadLetters, 1)
    }))

  it.scoped("holds the queue while the token is refused, and wake retries at once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      let tokenFixed = false
      const outbox = yield* Outbox.make({
        directory: dir,
        schema: Item,
        retry: { base: "1 hour", cap: "1 hour" },
        deliver: () => tokenFixed ? Effect.void : Effect.fail({ status: 401 }),
        judge: (e) =>
          (e as { status?: number }).status === 401 ? { verdict: "Unauthorized", status: 401, reason: "bad token" } : RetryPolicy.judge(e)
      })
      yield* outbox.enqueue(item(1))
      yield* until(Effect.map(outbox.status, (s) => s.lastError?.verdict === "Unauthorized"), "a refusal")
      assert.strictEqual(yield* outbox.pending, 1)
      assert.strictEqual((yield* outbox.status).deadLetters, 0)
      tokenFixed = true
      yield* outbox.wake
      assert.isTrue(yield* outbox.flush("5 seconds"))
    }))

  it.scoped("drops a torn tail and sets damage in the middle aside, losing no whole record", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function* () {
        const outbox = yield* Outbox.make({ directory: dir, schema: Item })
        for (let n = 0; n < 4; n++) yield* outbox.enqueue(item(n))
      }))
      const file = path.join(dir, "outbox.log")
      const buf = yield* Effect.promise(() => fs.readFile(file))
      const scan = RecordLog.scan(buf)
      const recordLength = scan.records[0]!.length + 12
      buf[recordLength + 20] = buf[recordLength + 20]! ^ 0xff // damage record 1 of 4
      const torn = RecordLog.frame(Buffer.from(JSON.stringify({ t: "item", id: "torn", at: "", item: { n: 9 } }))).subarray(0, 30)
      yield* Effect.promise(() => fs.writeFile(file, Buffer.concat([buf, torn])))

      const seen: Array<number> = []
      const outbox = yield* Outbox.make({ directory: dir, schema: Item, deliver: (i: Item) => Effect.sync(() => seen.push(i.n)) })
      assert.isTrue(yield* outbox.flush("5 seconds"))
      assert.deepStrictEqual(seen, [0, 2, 3])
      const status = yield* outbox.status
      assert.strictEqual(status.recovered.tornBytes, 30)
      assert.strictEqual(status.recovered.corruptRanges, 1)
      const files = yield* Effect.promise(() => fs.readdir(dir))
      assert.isTrue(files.some((f) => f.startsWith("corrupt-")))
    }))

  it.scoped("compacts its log once delivered records outweigh pending ones", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const outbox = yield* Outbox.make({ directory: dir, schema: Item, compactAfter: 10, deliver: () => Effect.void })
      yield* outbox.enqueueAll(Array.from({ length: 25 }, (_, n) => ({ item: item(n) })))
      assert.isTrue(yield* outbox.flush("5 seconds"))
      const { scan } = yield* Effect.promise(() => RecordLog.read(path.join(dir, "outbox.log")))
      assert.isBelow(scan.records.length, 10)
    }))

  it.scoped("lets one process at a time hold an outbox; a later opener may wait for it", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const first = yield* Effect.scoped(Effect.gen(function* () {
        yield* Outbox.make({ directory: dir, schema: Item })
        return yield* Effect.flip(Outbox.make({ directory: dir, schema: Item }))
      }))
      assert.strictEqual(first.reason, "Locked")
      assert.include(first.message, `process ${process.pid}`)
      // closed: the lock is free again
      yield* Outbox.make({ directory: dir, schema: Item })
    }))

  it.scoped("takes over a lock left by a process that is gone", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const owner = { pid: 2 ** 22 + 17, host: os.hostname(), nonce: "gone", acquiredAt: "2026-01-01T00:00:00Z" }
      yield* Effect.promise(() => fs.writeFile(path.join(dir, "outbox.lock"), JSON.stringify(owner)))
      const outbox = yield* Outbox.make({ directory: dir, schema: Item })
      yield* outbox.enqueue(item(1))
      const lock = JSON.parse(yield* Effect.promise(() => fs.readFile(path.join(dir, "outbox.lock"), "utf8")))
      assert.strictEqual(lock.pid, process.pid)
    }))

  it.scoped("takes over a lock file a crash left empty, but not one being written right now", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const lock = path.join(dir, "outbox.lock")
      yield* Effect.promise(() => fs.writeFile(lock, ""))
      assert.strictEqual((yield* Effect.flip(Outbox.make({ directory: dir, schema: Item }))).reason, "Locked")
      const old = new Date(Date.now() - 60_000)
      yield* Effect.promise(() => fs.utimes(lock, old, old))
      yield* Outbox.make({ directory: dir, schema: Item })
    }))

  it.scoped("does not redeliver an item whose dead letter was written just before a crash", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const entry = yield* Effect.scoped(Effect.gen(function* () {
        const outbox = yield* Outbox.make({ directory: dir, schema: Item })
        return yield* outbox.enqueue(item(1), { key: "obs-1" })
      }))
      // the crash: the dead letter is on disk, the log's "dead" marker is not
      const letter = {
        id: entry.id,
        key: "obs-1",
        at: entry.enqueuedAt,
        deadAt: entry.enqueuedAt,
        status: 409,
        reason: "conflict",
        attempts: 1,
        item: { n: 1, at: item(1).at.toISOString() }
      }
      yield* Effect.promise(() => RecordLog.append(path.join(dir, "dead-letters.log"), [Buffer.from(JSON.stringify(letter))]))
      const seen: Array<number> = []
      const outbox = yield* Outbox.make({ directory: dir, schema: Item, deliver: (i: Item) => Effect.sync(() => seen.push(i.n)) })
      assert.strictEqual(yield* outbox.pending, 0)
      assert.deepStrictEqual((yield* outbox.deadLetters).map((d) => d.key), ["obs-1"])
      assert.deepStrictEqual(seen, [])
    }))
})
