/**
 * The local transfer adapter beside a delete that tidies up empty folders (the disk driver's, at
 * a buffer where one site unpacks bundles while another sends the next): the destination's
 * folder vanishing between being made and the copy's temporary file being created is made again,
 * not reported as a bad request that ends a bundle FAILED.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalTransfer from "../src/node/LocalTransfer.js"
import * as TransferAdapterSuite from "../src/testing/TransferAdapterSuite.js"
import * as TransferEndpoint from "../src/TransferEndpoint.js"

describe("LocalTransfer into a folder another writer prunes", () => {
  it.scopedLive("every copy lands while the destination's empty folders are removed over and over", () =>
    Effect.gen(function* () {
      const d = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-local-prune-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(d, "src", "a.tar"), 64 * 1024))
      const bundles = path.join(d, "dst", "bundles")
      const adapter = LocalTransfer.make()
      let pruning = true
      // Removes the folders whenever they are empty (as the disk driver's delete does), as fast as it can.
      const pruner = (async () => {
        let removed = 0
        while (pruning) {
          for (const dir of [path.join(bundles, "chile"), bundles]) {
            if (await fs.rmdir(dir).then(() => true, () => false)) removed++
          }
          await new Promise((resolve) => setImmediate(resolve))
        }
        return removed
      })()
      const results = yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), (i) =>
        Effect.gen(function* () {
          const target = path.join(bundles, "chile", `b${i}.tar`)
          const result = yield* adapter.transfer({
            source: TransferEndpoint.local(path.join(d, "src", "a.tar")),
            destination: TransferEndpoint.local(target),
            kind: "file"
          })
          // the pruner may take the folder again once the copy is moved out of the way
          yield* Effect.promise(() => fs.rm(target, { force: true }))
          return result
        })).pipe(Effect.ensuring(Effect.sync(() => void (pruning = false))))
      const removed = yield* Effect.promise(() => pruner)
      assert.strictEqual(results.length, 40)
      for (const r of results) assert.strictEqual(r.checksum, sum)
      assert.isAbove(removed, 0, "the folders were pruned while the copies ran")
    }))
})
