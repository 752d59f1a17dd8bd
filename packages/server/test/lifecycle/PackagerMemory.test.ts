/**
 * Memory stays independent of package size: a large package (CCAT_PACKAGER_LARGE_BYTES, default
 * 1 GiB) is packaged and unpacked disk to disk while the process's resident memory is sampled.
 */
import type { Ids } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Packager from "../../src/lifecycle/Packager.js"
import * as Unpacker from "../../src/lifecycle/Unpacker.js"
import * as DiskLocation from "./DiskLocation.js"
import { tempDir, uuid } from "./support.js"

const largeBytes = Number(process.env.CCAT_PACKAGER_LARGE_BYTES ?? 1024 ** 3)
const boundBytes = 200 * 1024 * 1024

/** Writes `size` bytes (a random block repeated) and returns their checksum. */
const writeLarge = async (file: string, size: number) => {
  const block = randomBytes(16 * 1024 * 1024)
  const hash = createHash("sha256")
  const fh = await fs.open(file, "w")
  try {
    for (let left = size; left > 0; left -= block.length) {
      const part = block.subarray(0, Math.min(left, block.length))
      hash.update(part)
      await fh.write(part)
    }
  } finally {
    await fh.close()
  }
  return `sha256:${hash.digest("hex")}` as Packager.FileToPackage["checksum"]
}

/** Runs an effect while sampling RSS every 20 ms; returns its result and the peak growth. */
const peakGrowth = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    global.gc?.()
    const before = process.memoryUsage.rss()
    let peak = before
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
    const result = yield* Effect.ensuring(effect, Effect.sync(() => clearInterval(timer)))
    peak = Math.max(peak, process.memoryUsage.rss())
    return { result, growth: peak - before }
  })

describe("Packager memory", () => {
  it.effect(
    `packages and unpacks ${(largeBytes / 1024 ** 2).toFixed(0)} MiB with RSS growth under ${boundBytes / 1024 ** 2} MiB`,
    () =>
      Effect.gen(function* () {
        const root = yield* Effect.promise(() => tempDir("memory"))
        try {
          const sourceDir = path.join(root, "source")
          yield* Effect.promise(() => fs.mkdir(path.join(sourceDir, "obs"), { recursive: true }))
          const small = 32
          const files: Array<Packager.FileToPackage> = []
          const bigSize = largeBytes - small * 1024 * 1024
          files.push({
            id: uuid(),
            relativePath: "obs/big.fits" as Packager.FileToPackage["relativePath"],
            sizeBytes: bigSize,
            checksum: yield* Effect.promise(() => writeLarge(path.join(sourceDir, "obs/big.fits"), bigSize))
          })
          for (let i = 0; i < small; i++) {
            const p = `obs/small/${String(i).padStart(3, "0")}.dat`
            yield* Effect.promise(() => fs.mkdir(path.join(sourceDir, "obs/small"), { recursive: true }))
            files.push({
              id: uuid(),
              relativePath: p as Packager.FileToPackage["relativePath"],
              sizeBytes: 1024 * 1024,
              checksum: yield* Effect.promise(() => writeLarge(path.join(sourceDir, p), 1024 * 1024))
            })
          }
          const buffer = DiskLocation.make(path.join(root, "buffer"))
          const packed = yield* peakGrowth(Packager.pack({
            packageId: uuid(),
            executedObsUnitId: uuid<Ids.ExecutedObsUnitId>(),
            instrumentModuleId: uuid<Ids.InstrumentModuleId>(),
            files,
            source: DiskLocation.make(sourceDir),
            destination: buffer,
            key: "large.tar"
          }))
          assert.isAbove(packed.result.sizeBytes, largeBytes)
          assert.isBelow(packed.growth, boundBytes, `pack grew RSS by ${(packed.growth / 1024 ** 2).toFixed(0)} MiB`)
          yield* Effect.promise(() => fs.rm(sourceDir, { recursive: true }))

          const unpacked = yield* peakGrowth(Unpacker.unpackFrom(buffer, "large.tar", {
            destination: DiskLocation.make(path.join(root, "processing")),
            checksum: packed.result.checksum
          }))
          assert.strictEqual(unpacked.result.members.length, files.length)
          assert.isBelow(unpacked.growth, boundBytes, `unpack grew RSS by ${(unpacked.growth / 1024 ** 2).toFixed(0)} MiB`)
          console.log(
            `pack RSS growth ${(packed.growth / 1024 ** 2).toFixed(0)} MiB, unpack ${(unpacked.growth / 1024 ** 2).toFixed(0)} MiB for ${
              (largeBytes / 1024 ** 2).toFixed(0)
            } MiB`
          )
        } finally {
          yield* Effect.promise(() => fs.rm(root, { recursive: true, force: true }))
        }
      }),
    120_000
  )
})
