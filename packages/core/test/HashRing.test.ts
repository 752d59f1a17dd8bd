/**
 * A hashing ring of one's own (the packager's member checks, the unpacker's archive hash): a
 * lane's digest read back, members compared in the worker with only the first mismatch
 * recorded, and a command too large for a slot refused with nothing published. The shared
 * ring's hasher is tested with the disk driver (storage-drivers' HashRing.test.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import { Checksum } from "../src/index.js"
import * as HashRing from "../src/node/HashRing.js"

const sha256 = (...parts: ReadonlyArray<Uint8Array>) => {
  const h = createHash("sha256")
  for (const part of parts) h.update(part)
  return h.digest("hex")
}

/** Waits for a promise the ring hands back, if any. */
const settle = (wait: Promise<void> | undefined) => (wait === undefined ? Effect.void : Effect.promise(() => wait))

describe("HashRing", () => {
  it.scoped("reads a lane's digest back after pieces larger than the ring", () =>
    Effect.gen(function* () {
      const ring = (yield* HashRing.make(2))!
      const bytes = randomBytes((HashRing.slots + 2) * HashRing.slotBytes + 5)
      ring.publish({ kind: "begin", lane: 1, algorithm: "sha256" })
      for (let at = 0; at < bytes.length; at += HashRing.slotBytes) {
        yield* settle(ring.room())
        ring.publish({ kind: "update", lane: 1 }, [bytes.subarray(at, at + HashRing.slotBytes)])
      }
      yield* settle(ring.room())
      ring.publish({ kind: "digest", lane: 1 })
      yield* settle(ring.reached(ring.head()))
      assert.strictEqual(ring.digest(1), sha256(bytes))
    }))

  it.scoped("compares members in the worker and records only the first that differs", () =>
    Effect.gen(function* () {
      const ring = (yield* HashRing.make(1))!
      const members = Array.from({ length: 6 }, (_, i) => randomBytes(1000 + i))
      // members 2 and 4 are recorded with another checksum; 5 with one longer than any digest
      const recorded = members.map((m, i) => (i === 2 || i === 4 ? sha256(Buffer.from("other")) : i === 5 ? "f".repeat(200) : sha256(m)))
      for (const [i, m] of members.entries()) {
        yield* settle(ring.room(2))
        if (i % 2 === 0) {
          ring.publish({ kind: "whole", lane: 0, algorithm: "sha256", index: i, expected: recorded[i] }, [
            m.subarray(0, 10),
            m.subarray(10)
          ])
        } else {
          ring.publish({ kind: "begin", lane: 0, algorithm: "sha256", index: i, expected: recorded[i] })
          ring.publish({ kind: "update", lane: 0 }, [m])
          yield* settle(ring.room())
          ring.publish({ kind: "digest", lane: 0 })
        }
      }
      yield* settle(ring.reached(ring.head()))
      assert.deepStrictEqual(ring.mismatch(0), { index: 2, actual: Checksum.make("sha256", sha256(members[2]!)) })
      // a lane handed back starts without a mismatch
      ring.releaseLane(ring.takeLane()!)
      assert.isUndefined(ring.mismatch(0))
    }))

  it.scoped("refuses a command larger than a slot, publishing nothing", () =>
    Effect.gen(function* () {
      const ring = (yield* HashRing.make(1))!
      const head = ring.head()
      assert.throws(
        () =>
          ring.publish({ kind: "whole", lane: 0, algorithm: "sha256", index: 0, expected: "" }, [
            new Uint8Array(HashRing.slotBytes),
            new Uint8Array(1)
          ]),
        RangeError
      )
      assert.strictEqual(ring.head(), head)
    }))
})
