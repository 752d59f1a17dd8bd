import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Backoff, TransferPolicy } from "../src/index.js"

const ms = (d: Duration.Duration) => Duration.toMillis(d)
const base = FastCheck.integer({ min: 1, max: 120_000 })
const cap = FastCheck.integer({ min: 1, max: 3_600_000 })
const retry = FastCheck.integer({ min: -2, max: 80 })
const unit = FastCheck.double({ min: 0, max: 1, noNaN: true })
const factor = FastCheck.double({ min: 1, max: 4, noNaN: true })
const jitter = FastCheck.tuple(FastCheck.double({ min: 0, max: 1.5, noNaN: true }), FastCheck.double({ min: 0, max: 1.5, noNaN: true }))
  .map(([a, b]): Backoff.Jitter => ({ min: Math.min(a, b), max: Math.max(a, b) }))

describe("Backoff", () => {
  it.prop("a wait is the capped exponential scaled by the jitter, never above the cap", { base, cap, retry, unit, factor, jitter }, (p) => {
    const d = ms(Backoff.delayFor({ base: p.base, cap: p.cap, factor: p.factor, jitter: p.jitter }, p.retry, p.unit))
    const capped = Math.min(p.cap, p.base * Math.pow(p.factor, Math.max(0, p.retry - 1)))
    assert.isAtMost(d, p.cap)
    assert.isAtLeast(d, Math.min(p.cap, Math.floor(capped * p.jitter.min)))
    assert.isAtMost(d, Math.ceil(capped * p.jitter.max))
    assert.isTrue(Number.isInteger(d))
  })

  it.prop("waits grow with the retry and with the unit", { base, cap, retry, unit, factor }, (p) => {
    const policy = { base: p.base, cap: p.cap, factor: p.factor }
    assert.isAtMost(ms(Backoff.delayFor(policy, p.retry, p.unit)), ms(Backoff.delayFor(policy, p.retry + 1, p.unit)))
    assert.isAtMost(ms(Backoff.delayFor(policy, p.retry, 0)), ms(Backoff.delayFor(policy, p.retry, p.unit)))
    assert.isAtMost(ms(Backoff.delayFor(policy, p.retry, p.unit)), ms(Backoff.delayFor(policy, p.retry, 1)))
  })

  it.prop("the half-to-full waits are the ones the routes, the transfer lift and the metrics push computed before", {
    base,
    cap,
    retry,
    unit
  }, (p) => {
    // the formula each of them had of its own
    const before = Math.round(Math.min(p.cap, p.base * Math.pow(2, Math.max(0, p.retry - 1))) * (0.5 + p.unit / 2))
    assert.strictEqual(ms(Backoff.delayFor({ base: p.base, cap: p.cap }, p.retry, p.unit)), before)
  })

  it.prop("without jitter, the alert notifier's waits: the first wait doubled per failure up to the cap", { base, cap, retry }, (p) => {
    const attempts = Math.max(0, p.retry)
    const before = Math.min(p.cap, p.base * Math.pow(2, Math.min(attempts, 30)))
    assert.strictEqual(
      ms(Backoff.delayFor({ base: p.base, cap: p.cap, jitter: Backoff.none }, attempts + 1, Math.random())),
      Math.round(before)
    )
  })

  it("an uncapped policy grows without bound, never to NaN", () => {
    assert.isTrue(Duration.isFinite(Backoff.delayFor({ base: "100 millis" }, 20, 0.5)))
    assert.deepStrictEqual(Backoff.delayFor({ base: "100 millis" }, 5_000, 0.5), Duration.infinity)
  })

  it.effect.prop(
    "the schedule waits as delayFor says, for `times` retries",
    { times: FastCheck.integer({ min: 0, max: 12 }) },
    ({ times }) =>
      Effect.gen(function* () {
        const policy: Backoff.Policy = { base: "100 millis", cap: "2 seconds", times }
        const delays = Chunk.toReadonlyArray(yield* Schedule.run(Backoff.schedule(policy), 0, Array.from({ length: 20 }, () => undefined)))
        // Schedule.run also hands back the output of the step that ends the schedule
        assert.strictEqual(delays.length, times + 1)
        delays.slice(0, times).forEach((d, i) => {
          assert.isAtLeast(ms(d), ms(Backoff.delayFor(policy, i + 1, 0)))
          assert.isAtMost(ms(d), ms(Backoff.delayFor(policy, i + 1, 1)))
        })
      }),
    { fastCheck: { numRuns: 20 } }
  )

  it.effect("Effect.retry with the schedule retries `times` times, waiting each delay (TestClock)", () =>
    Effect.gen(function* () {
      let attempts = 0
      const fiber = yield* Effect.fork(
        Effect.retry(Effect.suspend(() => Effect.fail(++attempts)), Backoff.schedule({ base: "1 second", cap: "4 seconds", times: 3 }))
      )
      yield* TestClock.adjust("400 millis")
      assert.strictEqual(attempts, 1)
      yield* TestClock.adjust("1 minute")
      yield* fiber.await
      assert.strictEqual(attempts, 4)
    }))
})

describe("TransferPolicy", () => {
  const policy = TransferPolicy.defaultTransferPolicy
  const row = FastCheck.record({
    status: FastCheck.constantFrom("failed", "completed"),
    sinceMs: FastCheck.integer({ min: 0, max: 20 * 60_000 }),
    errorMessage: FastCheck.option(FastCheck.string(), { nil: null })
  })

  it.prop("a circuit opens only after `breakerThreshold` failures in a row, and lets a probe through after the cool-down", {
    last: FastCheck.array(row, { maxLength: 4 }),
    probing: FastCheck.integer({ min: 0, max: 2 })
  }, ({ last, probing }) => {
    const c = TransferPolicy.circuitOf({ last, probing }, policy)
    const tripped = last.length >= policy.breakerThreshold && last.every((r) => r.status === "failed")
    if (!tripped) return assert.strictEqual(c.state, "closed")
    if (last[0]!.sinceMs < policy.breakerCoolDownMs) {
      assert.strictEqual(c.state, "open")
      if (c.state === "open") assert.strictEqual(c.retryInMs, policy.breakerCoolDownMs - last[0]!.sinceMs)
    } else {
      assert.strictEqual(c.state, probing > 0 ? "open" : "half-open")
    }
  })

  it("a bundle's retries wait 10 s doubling, capped at 15 minutes, jittered to 50-100 %", () => {
    assert.strictEqual(TransferPolicy.backoffMs(policy, 1, 1), 10_000)
    assert.strictEqual(TransferPolicy.backoffMs(policy, 1, 0), 5_000)
    assert.strictEqual(TransferPolicy.backoffMs(policy, 3, 1), 40_000)
    assert.strictEqual(TransferPolicy.backoffMs(policy, 20, 1), 15 * 60_000)
    assert.strictEqual(TransferPolicy.backoffMs(policy, 20, 0), 7.5 * 60_000)
  })
})
