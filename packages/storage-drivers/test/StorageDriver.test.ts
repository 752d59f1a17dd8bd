/**
 * What `StorageDriver.make` adds to a minimal driver, checked on the real disk driver with
 * faults injected into its primitives: retries of transient failures with capped backoff (on
 * the TestClock, no sleeping), no retry of permanent ones, reads resumed by range, checksums.
 */
import { StorageDriver, StorageError } from "@ccat/core"
import { StorageDriverSuite } from "@ccat/core/testing"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-lift-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const unavailable = (method: string) =>
  new StorageError.StorageError({ reason: "Unavailable", driver: "flaky", method, description: "injected outage" })

/** The disk primitives with the first `failures` calls of stat failing as `reason`. */
const flaky = (name: string, failures: number, reason: StorageError.StorageErrorReason = "Unavailable") =>
  Effect.gen(function* () {
    const disk = yield* Disk.makeMinimal({ root: path.join(root, name) })
    const calls = { stat: 0 }
    const minimal: StorageDriver.Minimal = {
      ...disk,
      stat: (key) =>
        Effect.suspend(() => {
          calls.stat += 1
          return calls.stat <= failures
            ? Effect.fail(new StorageError.StorageError({ reason, driver: "flaky", method: "stat", key }))
            : disk.stat(key)
        })
    }
    return { disk, minimal, calls }
  })

const policy: StorageDriver.RetryPolicy = { base: "1 second", factor: 10, cap: "2 seconds", times: 3 }

describe("StorageDriver.make", () => {
  it.effect("retries Unavailable with capped exponential backoff, on the clock", () =>
    Effect.gen(function* () {
      const { calls, minimal } = yield* flaky("retry", 3)
      const d = StorageDriver.make(minimal, { retry: policy })
      yield* d.put("x.txt", Stream.make(new TextEncoder().encode("x")))
      const fiber = yield* Effect.fork(d.stat("x.txt"))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual(calls.stat, 1)
      yield* TestClock.adjust("1300 millis") // first wait: 1 s ± 20 % jitter
      assert.strictEqual(calls.stat, 2)
      yield* TestClock.adjust("2 seconds") // second wait would be 10 s, capped at 2 s
      assert.strictEqual(calls.stat, 3)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(calls.stat, 4)
      const info = yield* Fiber.join(fiber)
      assert.strictEqual(info.size, 1)
    }))

  it.effect("gives up after the policy's retries with the transient error", () =>
    Effect.gen(function* () {
      const { calls, minimal } = yield* flaky("give-up", 100)
      const d = StorageDriver.make(minimal, { retry: policy })
      const fiber = yield* Effect.fork(Effect.flip(d.stat("x.txt")))
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("3 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.reason, "Unavailable")
      assert.strictEqual(calls.stat, 4)
    }))

  it.effect("does not retry permanent failures", () =>
    Effect.gen(function* () {
      const { calls, minimal } = yield* flaky("permanent", 100, "PermissionDenied")
      const d = StorageDriver.make(minimal, { retry: policy })
      const error = yield* Effect.flip(d.stat("x.txt"))
      assert.strictEqual(error.reason, "PermissionDenied")
      assert.strictEqual(calls.stat, 1)
    }))

  it.effect("resumes an interrupted read where it stopped, by range", () =>
    Effect.gen(function* () {
      const disk = yield* Disk.makeMinimal({ root: path.join(root, "resume") })
      const body = StorageDriverSuite.bodyOf(5 * 1024 * 1024 + 3, 4)
      const expected = yield* StorageDriverSuite.digestOf(body)
      let broke = false
      const ranges: Array<number> = []
      const d = StorageDriver.make(
        {
          ...disk,
          get: (key, range) => {
            ranges.push(range?.start ?? 0)
            const s = disk.get(key, range)
            if (broke) return s
            broke = true
            // the connection drops after 2 MiB
            return Stream.concat(Stream.take(s, 2), Stream.fail(unavailable("get")))
          }
        },
        { retry: policy }
      )
      yield* d.put("big.bin", body)
      const fiber = yield* Effect.fork(StorageDriverSuite.digestOf(d.get("big.bin")))
      // real file I/O runs between the virtual clock's steps
      while (Option.isNone(yield* Fiber.poll(fiber))) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        yield* TestClock.adjust("500 millis")
      }
      const got = yield* Fiber.join(fiber)
      assert.strictEqual(got.checksum, expected.checksum)
      assert.deepStrictEqual(ranges, [0, 2 * 1024 * 1024])
    }))

  it.effect("resumes an interrupted readEach after the last part consumed; a consumer's own failure is not retried", () =>
    Effect.gen(function* () {
      const disk = yield* Disk.makeMinimal({ root: path.join(root, "resume-each") })
      const body = StorageDriverSuite.bodyOf(5 * 1024 * 1024 + 3, 5)
      const expected = yield* StorageDriverSuite.digestOf(body)
      let broke = false
      const ranges: Array<number> = []
      const d = StorageDriver.make(
        {
          ...disk,
          readEach: <E>(
            key: Parameters<typeof disk.stat>[0],
            range: StorageDriver.ByteRange | undefined,
            consume: (part: Uint8Array) => Effect.Effect<void, E>
          ) => {
            ranges.push(range?.start ?? 0)
            if (broke) return disk.readEach!(key, range, consume)
            broke = true
            // the read breaks down after two parts were consumed
            let parts = 0
            return disk.readEach!<E | StorageError.StorageError>(
              key,
              range,
              (part) => parts++ < 2 ? consume(part) : Effect.fail(unavailable("readEach"))
            )
          }
        },
        { retry: policy }
      )
      yield* d.put("big.bin", body)
      const h = createHash("sha256")
      let consumed = 0
      const fiber = yield* Effect.fork(d.readEach("big.bin", (part) =>
        Effect.sync(() => {
          h.update(part)
          consumed += part.length
        })))
      // real file I/O runs between the virtual clock's steps
      while (Option.isNone(yield* Fiber.poll(fiber))) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        yield* TestClock.adjust("500 millis")
      }
      assert.strictEqual(yield* Fiber.join(fiber), 5 * 1024 * 1024 + 3)
      assert.strictEqual(consumed, 5 * 1024 * 1024 + 3)
      assert.strictEqual(`sha256:${h.digest("hex")}`, expected.checksum)
      assert.deepStrictEqual(ranges, [0, 2 * 1024 * 1024])

      // a consumer failing with an Unavailable of its own (a write elsewhere) is not a driver outage
      ranges.length = 0
      const failure = yield* Effect.flip(d.readEach("big.bin", () => Effect.fail(unavailable("consumer"))))
      assert.strictEqual(failure.method, "consumer")
      assert.deepStrictEqual(ranges, [0])
    }))

  it.effect("refuses a driver whose capabilities promise what it lacks", () =>
    Effect.gen(function* () {
      const disk = yield* Disk.makeMinimal({ root: path.join(root, "caps") })
      assert.throws(() => StorageDriver.make({ ...disk, capabilities: { ...disk.capabilities, presign: true } }))
    }))
})
