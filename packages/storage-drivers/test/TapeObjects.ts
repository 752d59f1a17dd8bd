/**
 * What the several-process tape tests and their child writers both need: the archive's shape
 * and the bytes of each object, derived from its key so the test knows them without being told.
 */
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as path from "node:path"
import * as Tape from "../src/Tape.js"
import * as VirtualTapeLibrary from "../src/VirtualTapeLibrary.js"

const KiB = 1024

/** The bytes stored under a key: 1 KiB to 128 KiB of pseudo-random data seeded by the key. */
export const bodyFor = (key: string): Uint8Array => {
  const seed = createHash("sha256").update(key).digest()
  const size = KiB + (seed.readUInt32BE(0) % (127 * KiB))
  const out = new Uint8Array(size)
  let x = seed.readUInt32BE(4) || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** The sha256 of the bytes stored under a key, as the driver reports checksums. */
export const checksumFor = (key: string) => `sha256:${createHash("sha256").update(bodyFor(key)).digest("hex")}`

/** Opens the shared tape archive: small volumes, so writes move on from a full one. */
export const openTape = (root: string) =>
  Effect.flatMap(
    VirtualTapeLibrary.make({ root: path.join(root, "library"), volumes: 16, capacityBytes: 4 * KiB * KiB, drives: 2 }),
    (library) => Tape.make({ root: path.join(root, "archive"), library, keepOnline: false })
  )
