/**
 * The JSON logger writes one object per line with the annotations (the ids a line concerns) and
 * the open spans as fields; a minimum level drops what is below it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Logging from "../../src/observability/Logging.js"

const capture = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const original = console.log
    console.log = (...args: Array<unknown>) => void lines.push(args.map(String).join(" "))
    yield* Effect.ensuring(effect, Effect.sync(() => (console.log = original)))
    return lines
  })

describe("Logging", () => {
  it.effect("JSON lines carry annotations and spans; the minimum level filters", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        Effect.gen(function* () {
          yield* Effect.logDebug("hidden")
          yield* Effect.logInfo("bundle delivered").pipe(
            Effect.annotateLogs({ bundleId: "b-1", site: "chile" }),
            Effect.withLogSpan("Transfer.run")
          )
        }).pipe(Effect.provide(Logging.layer("json", LogLevel.Info)))
      )
      assert.strictEqual(lines.length, 1)
      const entry = JSON.parse(lines[0]!)
      assert.strictEqual(entry.message, "bundle delivered")
      assert.strictEqual(entry.logLevel, "INFO")
      assert.deepStrictEqual(entry.annotations, { bundleId: "b-1", site: "chile" })
      assert.property(entry.spans, "Transfer.run")
    }))

  it.effect("replaces a logger installed before it (runMain's pretty one), so no line is written twice", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        Effect.logInfo("once").pipe(Effect.provide(Logging.layer("json")), Effect.provide(Logger.pretty))
      )
      assert.strictEqual(lines.length, 1)
      assert.strictEqual(JSON.parse(lines[0]!).message, "once")
    }))

  it.effect("the format and level come from CCAT_LOG_FORMAT and CCAT_LOG_LEVEL", () =>
    Effect.gen(function* () {
      const before = { f: process.env.CCAT_LOG_FORMAT, l: process.env.CCAT_LOG_LEVEL }
      process.env.CCAT_LOG_FORMAT = "logfmt"
      process.env.CCAT_LOG_LEVEL = "warn"
      const config = yield* Logging.config
      process.env.CCAT_LOG_FORMAT = "yaml"
      const bad = yield* Effect.either(Logging.config)
      if (before.f === undefined) delete process.env.CCAT_LOG_FORMAT
      else process.env.CCAT_LOG_FORMAT = before.f
      if (before.l === undefined) delete process.env.CCAT_LOG_LEVEL
      else process.env.CCAT_LOG_LEVEL = before.l
      assert.strictEqual(config.format, "logfmt")
      assert.strictEqual(config.level, LogLevel.Warning)
      assert.isTrue(bad._tag === "Left")
    }))
})
