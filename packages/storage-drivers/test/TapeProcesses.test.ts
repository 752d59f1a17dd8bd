/**
 * The tape driver shared by two writer processes at once (workers of one site on one archive):
 * neither loses a catalog entry of the other, and every object reads back byte-identical.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { bodyFor } from "./TapeObjects.js"
import { assertEveryEntryReads, spawnWriter } from "./TapeProcesses.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-tape-processes-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

describe("Tape shared by several processes", () => {
  it.scopedLive(
    "two writer processes at once: every object of both is in the catalog and reads back byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = path.join(root, "two-writers")
        const go = path.join(dir, "go")
        const perWriter = 30
        const writers = yield* Effect.all([spawnWriter(dir, "a", perWriter, go), spawnWriter(dir, "b", perWriter, go)])
        yield* Effect.forEach(writers, (w) => w.waitFor("ready", (out) => out.includes("ready")))
        // both are open before either writes, so their writes overlap
        fs.writeFileSync(go, "")
        for (const w of writers) {
          const exit = yield* w.exited
          assert.deepStrictEqual(exit, { code: 0, signal: null }, w.output())
        }
        const { objects, tape } = yield* assertEveryEntryReads(dir)
        const keys = ["a", "b"].flatMap((p) => Array.from({ length: perWriter }, (_, i) => `${p}/${i}.bin`))
        assert.deepStrictEqual(Object.keys(objects).sort(), [...keys].sort())
        for (const key of keys) {
          const bytes = yield* StorageDriverSuite.bytesOf(tape.get(key))
          assert.isTrue(Buffer.from(bytes).equals(Buffer.from(bodyFor(key))), `${key} reads back byte-identical`)
        }
        // the writes did interleave: in commit order, the writer changes more than once
        const order = Object.entries(objects).sort(([, x], [, y]) => x.writtenAt.localeCompare(y.writtenAt)).map(([k]) => k[0])
        const switches = order.filter((p, i) => i > 0 && p !== order[i - 1]).length
        assert.isAtLeast(switches, 2, order.join(""))
      }),
    120_000
  )
})
