/**
 * The hasher on core's shared hashing ring that the disk and S3 drivers are lifted with: its digests equal Node's own for
 * every algorithm, at the ring's edges (empty, one slot, pieces larger than a slot), with more
 * hashers at once than the worker has lanes, and for callers that never wait (`ready` skipped);
 * a put through the disk driver stores the checksum Node computes; and a process that used it
 * exits by itself (the worker never keeps it alive).
 */
import { Checksum, StorageDriver } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawnSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll } from "vitest"
import * as HashRing from "@ccat/core/node/HashRing"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-hash-ring-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const MiB = 1024 * 1024

/** Feeds the parts, waiting whenever the hasher asks (as the lifted service does), and digests. */
const hashWaiting = async (algorithm: Checksum.Algorithm, parts: ReadonlyArray<Uint8Array>) => {
  const h = HashRing.hasher(algorithm)
  for (const part of parts) {
    h.update(part)
    await h.ready?.(false)
  }
  await h.ready?.(true)
  return h.digest()
}

const expected = (algorithm: Checksum.Algorithm, parts: ReadonlyArray<Uint8Array>) => {
  const h = createHash(Checksum.nodeHashName[algorithm])
  for (const part of parts) h.update(part)
  return h.digest("hex")
}

/** `bytes` cut into pieces of the given sizes, cycling. */
const cut = (bytes: Uint8Array, sizes: ReadonlyArray<number>) => {
  const parts: Array<Uint8Array> = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]
    parts.push(bytes.subarray(at, at + n))
    at += n
  }
  return parts
}

describe("HashRing.hasher", () => {
  it.live("gives Node's digest for every algorithm, empty input, and pieces around the slot size", () =>
    Effect.promise(async () => {
      const bytes = randomBytes(3 * HashRing.slotBytes + 12_345)
      const shapes: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
        [],
        [new Uint8Array(0)],
        [bytes.subarray(0, 1)],
        [bytes.subarray(0, HashRing.slotBytes)],
        [bytes.subarray(0, HashRing.slotBytes + 1)],
        [bytes],
        // one piece larger than the whole ring
        [randomBytes((HashRing.slots + 3) * HashRing.slotBytes + 1)],
        cut(bytes, [1, 4096, HashRing.slotBytes - 1, 2 * HashRing.slotBytes + 3, 65_536])
      ]
      for (const algorithm of Object.keys(Checksum.nodeHashName) as Array<Checksum.Algorithm>) {
        for (const [i, parts] of shapes.entries()) {
          assert.strictEqual(await hashWaiting(algorithm, parts), expected(algorithm, parts), `${algorithm}, shape ${i}`)
        }
      }
    }))

  it.live("keeps each hasher's bytes apart with more hashers at once than lanes, more bytes than the ring", () =>
    Effect.promise(async () => {
      const count = HashRing.sharedLanes + 6
      const bodies = Array.from({ length: count }, (_, i) => cut(randomBytes((i % 5) * 300_000 + 1), [65_536, 1, 262_144]))
      // started together and fed in turns, so their commands interleave in the ring
      const hashers = bodies.map(() => HashRing.hasher("sha256"))
      const longest = Math.max(...bodies.map((b) => b.length))
      for (let step = 0; step < longest; step++) {
        for (const [i, h] of hashers.entries()) {
          const part = bodies[i][step]
          if (part === undefined) continue
          h.update(part)
          await h.ready?.(false)
        }
      }
      for (const [i, h] of hashers.entries()) {
        await h.ready?.(true)
        assert.strictEqual(h.digest(), expected("sha256", bodies[i]), `hasher ${i}`)
      }
      // the lanes came back: a later round again matches
      const again = cut(randomBytes(20 * MiB), [MiB])
      assert.strictEqual(await hashWaiting("sha256", again), expected("sha256", again))
    }))

  it.live("stays correct for a caller that never waits (update and digest block instead)", () =>
    Effect.sync(() => {
      const parts = cut(randomBytes(2 * HashRing.slots * HashRing.slotBytes + 99), [MiB, 3 * MiB + 5])
      const h = HashRing.hasher("sha256")
      for (const part of parts) h.update(part)
      assert.strictEqual(h.digest(), expected("sha256", parts))
    }))

  it.live("a disk put returns and verifies the checksum Node computes, and refuses a wrong one storing nothing", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "puts") })
      const bytes = randomBytes(40 * MiB + 7)
      const info = yield* d.put("a/big.bin", Stream.fromIterable(cut(bytes, [MiB, 5 * MiB, 123])))
      assert.strictEqual(info.checksum, Checksum.make("sha256", expected("sha256", [bytes])))
      assert.strictEqual((yield* d.verify("a/big.bin", info.checksum!)).size, bytes.length)
      const wrong = Checksum.make("sha256", "0".repeat(64))
      const refused = yield* Effect.flip(d.put("a/wrong.bin", Stream.make(bytes), { checksum: wrong }))
      assert.strictEqual(refused.reason, "Corrupt")
      assert.isFalse(yield* d.exists("a/wrong.bin"))
      // the same bytes through a driver lifted with Node's hasher on this thread
      const plain = StorageDriver.make(yield* Disk.makeMinimal({ root: path.join(root, "plain") }))
      assert.strictEqual((yield* plain.put("b.bin", Stream.make(bytes))).checksum, info.checksum)
    }))

  it("lets a process that used it exit by itself", () => {
    const script = path.join(root, "exits.ts")
    fs.writeFileSync(
      script,
      [
        `import * as HashRing from ${JSON.stringify(fileURLToPath(new URL("../../core/src/node/HashRing.ts", import.meta.url)))}`,
        `const h = HashRing.hasher("sha256")`,
        `h.update(new Uint8Array(5 * 1024 * 1024))`,
        `h.ready?.(true)?.then(() => console.log(h.digest()))`
      ].join("\n")
    )
    const started = Date.now()
    const run = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", timeout: 30_000 })
    assert.strictEqual(run.status, 0, run.stderr)
    assert.strictEqual(run.stdout.trim(), createHash("sha256").update(new Uint8Array(5 * 1024 * 1024)).digest("hex"))
    // tsx start-up included; a worker keeping the process up would hit the 30 s timeout
    assert.isBelow(Date.now() - started, 20_000)
  })
})
