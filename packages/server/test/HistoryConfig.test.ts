/**
 * The history settings of a topology: retention periods are durations of at least 30 days and
 * the years created ahead are 1 to 10; anything else is refused naming the field.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

describe("history tables", () => {
  it.effect("a retention shorter than 30 days, or not a duration, is refused naming the field", () =>
    Effect.gen(function* () {
      const decode = Schema.decodeUnknownEither(Topology.HistoryConfig)
      assert.deepStrictEqual(
        Either.getOrThrow(decode({ events: "forever", transferAttempts: "400 days" })).transferAttempts,
        400 * 24 * 3600_000
      )
      assert.deepStrictEqual(Either.getOrThrow(decode({ events: "7 years" })).events, 7 * 365 * 24 * 3600_000)
      for (const bad of [
        { events: "10 days" },
        { events: "never" },
        { events: "29 days" },
        { transferAttempts: -1 },
        { yearsAhead: 0 },
        { yearsAhead: 11 }
      ]) {
        const refused = decode(bad)
        assert.isTrue(Either.isLeft(refused), JSON.stringify(bad))
        if ("yearsAhead" in bad || "transferAttempts" in bad) continue
        assert.match(Topology.formatIssues(Either.flip(refused).pipe(Either.getOrThrow)).join("\n"), /history|events: .*at least 30 days/)
      }
    }))
})
