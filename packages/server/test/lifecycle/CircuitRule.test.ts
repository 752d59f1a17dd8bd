/**
 * The statement that creates a transfer attempt decides in SQL whether a circuit lets it through;
 * TransferPolicy.circuitOf decides the same in TypeScript everywhere else. Both are held to the
 * same answer over every shape of a circuit's facts: fewer finished attempts than the threshold,
 * a success among them, all failed within or past the cool-down, a probe running or not.
 */
import { TransferPolicy } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { circuitLetsThroughSql } from "../../src/lifecycle/TransferAttempts.js"

const policy: TransferPolicy.TransferPolicyConfig = {
  ...TransferPolicy.defaultTransferPolicy,
  breakerThreshold: 3,
  breakerCoolDownMs: 60_000
}

/** Every history of up to four finished attempts (newest first) with the newest one's age below, at or past the cool-down. */
const histories = (() => {
  const out: Array<TransferPolicy.CircuitFacts["last"]> = [[]]
  for (let n = 1; n <= 4; n++) {
    for (let mask = 0; mask < 1 << n; mask++) {
      for (const sinceMs of [1_000, 60_000, 61_000]) {
        out.push(Array.from({ length: n }, (_, i) => ({
          status: (mask >> i) & 1 ? "completed" : "failed",
          sinceMs: sinceMs + i * 1000,
          errorMessage: "refused"
        })) as never)
      }
    }
  }
  return out
})()

describe("the circuit rule in SQL", () => {
  it.layer(TestDatabase.layerEmpty)((it) => {
    it.effect("agrees with TransferPolicy.circuitOf on every history, with and without a probe running", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const cases = histories.flatMap((last) => [0, 1].map((probing) => ({ last, probing })))
        const rows = yield* sql<{ n: number; ok: boolean }>`
          select c.n::int as n, ${circuitLetsThroughSql(sql, "c.last", "c.probing", policy)} as ok
          from json_to_recordset(${
            JSON.stringify(cases.map((c, n) => ({ n, last: c.last, probing: c.probing })))
          }::json) as c(n int, last json, probing int)
          order by c.n`
        assert.strictEqual(rows.length, cases.length)
        let open = 0
        for (const row of rows) {
          const c = cases[row.n]!
          const expected = TransferPolicy.circuitOf(c, policy).state !== "open"
          if (!expected) open++
          assert.strictEqual(row.ok, expected, `facts ${JSON.stringify(c)}`)
        }
        // the cases reach every outcome: closed, open in its cool-down, open while probing, half-open
        assert.isAbove(open, 0)
        assert.isBelow(open, cases.length)
      }))
  })
})
