import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalTransfer from "../src/node/LocalTransfer.js"
import * as TransferAdapterSuite from "../src/testing/TransferAdapterSuite.js"
import * as TransferAdapter from "../src/TransferAdapter.js"
import * as TransferEndpoint from "../src/TransferEndpoint.js"

TransferAdapterSuite.run("local", async () => ({
  layer: LocalTransfer.layer({ progressIntervalMs: 20 }),
  source: (p) => TransferEndpoint.local(p),
  destination: (p) => TransferEndpoint.local(p),
  largeBytes: TransferAdapterSuite.largeBytesFromEnv()
}))

/**
 * A real local copy whose destination is damaged after writing: the fault a bad disk or a bad
 * link causes, injected around (not instead of) our adapter, to drive verification and retries.
 */
const corruptingOnce = (count: { n: number }, corruptions: number): TransferAdapter.Minimal => {
  const inner = LocalTransfer.minimal({ fsync: false })
  return {
    ...inner,
    copy: (request, report) =>
      inner.copy(request, report).pipe(
        Effect.tap(() =>
          Effect.promise(async () => {
            count.n++
            if (count.n <= corruptions) {
              const fh = await fs.open(request.destination.path, "r+")
              await fh.write(Buffer.from([0xff, 0x00, 0xff]), 0, 3, 10)
              await fh.close()
            }
          })
        ),
        // the source manifest from the copy pass is what detects the damage
        Effect.map((c) => c)
      )
  }
}

describe("TransferAdapter.make (lifted service) on the local adapter", () => {
  /** A folder of the test's own, removed when the test ends, whatever its outcome. */
  const scratch = Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-local-"))),
    (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
  )

  it.scoped("a corrupted copy is detected, removed, and retried with backoff until it verifies", () =>
    Effect.gen(function* () {
      const d = yield* scratch
      const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(d, "src.bin"), 200_000))
      const count = { n: 0 }
      const adapter = TransferAdapter.make(corruptingOnce(count, 2), { retry: { times: 3, base: "1 second", cap: "10 seconds" } })
      const fiber = yield* adapter
        .stream({
          source: TransferEndpoint.local(path.join(d, "src.bin")),
          destination: TransferEndpoint.local(path.join(d, "dst.bin")),
          kind: "file"
        })
        .pipe(Stream.runCollect, Effect.fork)
      // two retries: the first waits 0.5-1 s, the second 1-2 s; the clock is moved, not slept
      for (let i = 0; i < 400 && count.n < 3; i++) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 25)))
        yield* TestClock.adjust("500 millis")
      }
      const events = [...(yield* Fiber.join(fiber))]
      const retries = events.filter((e) => e._tag === "Retrying")
      assert.strictEqual(retries.length, 2)
      for (const r of retries) {
        if (r._tag === "Retrying") {
          assert.strictEqual(r.error.reason, "ChecksumMismatch")
          assert.isTrue(r.error.retryable)
        }
      }
      const last = events[events.length - 1]
      assert.strictEqual(last?._tag, "Completed")
      if (last?._tag === "Completed") {
        assert.strictEqual(last.result.attempts, 3)
        assert.strictEqual(last.result.checksum, sum)
      }
    }))

  it.scoped("gives up after the configured retries and reports the last error", () =>
    Effect.gen(function* () {
      const d = yield* scratch
      yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(d, "src.bin"), 50_000))
      const count = { n: 0 }
      const adapter = TransferAdapter.make(corruptingOnce(count, 99), { retry: { times: 2, base: "1 second", cap: "1 second" } })
      const fiber = yield* adapter
        .transfer({
          source: TransferEndpoint.local(path.join(d, "src.bin")),
          destination: TransferEndpoint.local(path.join(d, "dst.bin")),
          kind: "file"
        })
        .pipe(Effect.exit, Effect.fork)
      for (let i = 0; i < 400 && count.n < 3; i++) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 25)))
        yield* TestClock.adjust("1 second")
      }
      const exit = yield* Fiber.join(fiber)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(count.n, 3)
      // the bad copy is not left under the final name
      const left = yield* Effect.promise(() => fs.readdir(d))
      assert.deepStrictEqual(left, ["src.bin"])
    }))

  it.scopedLive("verify() re-checks a destination later, and reports damage without removing anything", () =>
    Effect.gen(function* () {
      const d = yield* scratch
      yield* Effect.promise(() => TransferAdapterSuite.writeTree(path.join(d, "src"), 20))
      const adapter = LocalTransfer.make()
      const request: TransferAdapter.Request = {
        source: TransferEndpoint.local(path.join(d, "src")),
        destination: TransferEndpoint.local(path.join(d, "dst")),
        kind: "directory"
      }
      const result = yield* adapter.transfer(request)
      const manifest = yield* adapter.verify(request)
      assert.deepStrictEqual(manifest, result.manifest)
      const victim = Object.keys(manifest).find((k) => manifest[k]!.size > 0)!
      yield* Effect.promise(() => fs.appendFile(path.join(d, "dst", victim), "x"))
      const exit = yield* adapter.verify(request).pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        assert.strictEqual(exit.cause.error.reason, "ChecksumMismatch")
        assert.include(exit.cause.error.detail, victim)
      }
      yield* Effect.promise(() => fs.access(path.join(d, "dst", victim)))
    }))

  it("backoff grows exponentially, is jittered, and never exceeds the cap", () => {
    const policy: TransferAdapter.RetryPolicy = { times: 10, base: "1 second", cap: "30 seconds" }
    const ms = (n: number, u: number) => Duration.toMillis(TransferAdapter.backoff(policy, n, u))
    assert.strictEqual(ms(1, 1), 1000)
    assert.strictEqual(ms(1, 0), 500)
    assert.strictEqual(ms(3, 1), 4000)
    assert.strictEqual(ms(10, 1), 30_000)
    assert.strictEqual(ms(10, 0), 15_000)
  })

  it("the deadline scales with the size", () => {
    const policy: TransferAdapter.TimeoutPolicy = { base: "1 minute", minBytesPerSecond: 1_000_000 }
    assert.strictEqual(Duration.toMillis(TransferAdapter.deadlineFor(0, policy)), 60_000)
    assert.strictEqual(Duration.toMillis(TransferAdapter.deadlineFor(50e9, policy)), 60_000 + 50_000_000)
  })

  it.live("rejects an ssh endpoint as Unsupported: the local adapter reaches local paths only", () =>
    Effect.gen(function* () {
      const exit = yield* LocalTransfer.make()
        .transfer({
          source: TransferEndpoint.local("/etc/hostname"),
          destination: TransferEndpoint.ssh({ host: "example.org", path: "/x" }),
          kind: "file"
        })
        .pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") assert.strictEqual(exit.cause.error.reason, "Unsupported")
    }))

  it.scopedLive("interrupting a transfer leaves no temporary file behind", () =>
    Effect.gen(function* () {
      const d = yield* scratch
      yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(d, "src.bin"), 256 * 1024 * 1024))
      yield* LocalTransfer.make({ progressIntervalMs: 10 })
        .stream({
          source: TransferEndpoint.local(path.join(d, "src.bin")),
          destination: TransferEndpoint.local(path.join(d, "out", "dst.bin")),
          kind: "file"
        })
        .pipe(Stream.take(1), Stream.runDrain)
      // The stream ends only once the interrupted copy has settled and removed its temporary file.
      const left = yield* Effect.promise(() => fs.readdir(path.join(d, "out")).catch(() => []))
      assert.deepStrictEqual(left, [])
    }))
})
