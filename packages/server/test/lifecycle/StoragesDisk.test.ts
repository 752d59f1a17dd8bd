/**
 * A disk location built from its configuration: large durable writes go past the page cache
 * unless the location says `directIo: false`. `fincore` (util-linux) counts a file's pages in the
 * page cache, so the test sees which way the bytes went on the real filesystem.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import * as Storages from "../../src/lifecycle/Storages.js"
import { tempDir } from "./LifecycleWorld.js"

const MiB = 1024 * 1024

const diskAt = (id: string, root: string, driver: Record<string, unknown>): Storages.LocationSpec => ({
  id,
  name: `buffer-${id.slice(-1)}`,
  technology: "disk",
  driverConfig: { root, ...driver }
})

const resident = (file: string) =>
  Number(execFileSync("fincore", ["--bytes", "--noheadings", "--output", "RES", file], { encoding: "utf8" }).trim())

describe("Storages: disk", () => {
  it.scopedLive("writes large objects past the page cache by default, through it with directIo: false", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const storages = yield* Storages.make()
      const size = 48 * MiB
      const direct = yield* storages.of(diskAt("00000000-0000-4000-8000-000000000001", path.join(dir, "a"), {}))
      const paged = yield* storages.of(diskAt("00000000-0000-4000-8000-000000000002", path.join(dir, "b"), { directIo: false }))
      yield* direct.put("x.bin", Stream.make(randomBytes(size)))
      yield* paged.put("x.bin", Stream.make(randomBytes(size)))
      assert.isAtMost(
        resident(path.join(dir, "a", "x.bin")),
        9 * MiB,
        "the default: only the first 8 MiB and the tail through the page cache"
      )
      assert.isAbove(resident(path.join(dir, "b", "x.bin")), size / 2, "directIo: false: through the page cache")
    }))
})
