/**
 * Members' checksums checked against their records, on a hashing ring's worker or on this
 * thread. A package is hashed twice in its one pass (each file against its filed checksum, and
 * the whole tar in the destination's `put`, on the storage drivers' shared ring). Were the
 * files' hashes on this thread, it would do the SHA-256 of every byte on top of reading and
 * writing, the one busy core of two while the other waits.
 *
 * The worker needs no answer per member: each member's command carries the expected digest, the
 * worker compares, and records only the first mismatch (members arrive in archive order, so it is
 * the lowest index). The writer reads that record between members for free (one `Atomics.load`),
 * and waits for the worker only when the ring is full and once before the archive ends, so a
 * small file costs one memcpy into the ring and no round trip.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash, type Hash } from "node:crypto"
import * as Checksum from "../../Checksum.js"
import * as HashRing from "../HashRing.js"

/** The first member whose bytes hashed to something other than its record. */
export type Mismatch = HashRing.Mismatch

/**
 * Checks members in order. Each call that publishes work needs `room()` to have resolved first
 * (undefined: there is room now); `update` waits for room itself between its slot-sized pieces.
 */
export interface Verifier {
  /** Whether one more command can be published; a promise to wait for when not. */
  readonly room: () => Promise<void> | undefined
  /** Starts member `index`, whose bytes should hash to `expected`; its bytes follow through `update`. */
  readonly begin: (index: number, expected: Checksum.Checksum) => void
  /** Feeds the current member's bytes; a promise when it had to wait for room (the bytes are taken when it resolves). */
  readonly update: (part: Uint8Array) => Promise<void> | undefined
  /** Ends the current member: its digest is compared with the expected one. */
  readonly end: () => void
  /** A whole member at once (at most `slotBytes` in all), compared with `expected`. */
  readonly whole: (index: number, expected: Checksum.Checksum, parts: ReadonlyArray<Uint8Array>) => void
  /** The first mismatch found so far, if any. */
  readonly mismatch: () => Mismatch | undefined
  /** Waits until every member published so far has been compared; undefined: already. */
  readonly drained: () => Promise<void> | undefined
}

/** Bytes per ring slot: the largest member `whole` takes, and the largest piece of an update. */
export const slotBytes = HashRing.slotBytes

/** This thread's verifier: each member's digest is compared as it ends. */
export const local = (): Verifier => {
  let hash: Hash | undefined
  let current: { readonly index: number; readonly expected: Checksum.Checksum } | undefined
  let first: Mismatch | undefined
  const compare = (index: number, expected: Checksum.Checksum, hex: string) => {
    const actual = Checksum.make(Checksum.parse(expected).algorithm, hex)
    if (actual !== expected && first === undefined) first = { index, actual }
  }
  return {
    room: () => undefined,
    begin: (index, expected) => {
      current = { index, expected }
      hash = createHash(Checksum.nodeHashName[Checksum.parse(expected).algorithm])
    },
    update: (part) => {
      hash!.update(part)
      return undefined
    },
    end: () => compare(current!.index, current!.expected, hash!.digest("hex")),
    whole: (index, expected, parts) => {
      const h = createHash(Checksum.nodeHashName[Checksum.parse(expected).algorithm])
      for (const part of parts) h.update(part)
      compare(index, expected, h.digest("hex"))
    },
    mismatch: () => first,
    drained: () => undefined
  }
}

/** A verifier on a ring of its own for the scope's lifetime; on this thread where no worker starts. */
export const make: Effect.Effect<Verifier, never, Scope.Scope> = Effect.map(HashRing.make(1), (ring): Verifier => {
  if (ring === undefined) return local()
  const lane = 0
  const room = () => ring.room()
  const update = (part: Uint8Array): Promise<void> | undefined => {
    let at = 0
    const more = (): Promise<void> | undefined => {
      while (at < part.length) {
        const wait = room()
        if (wait !== undefined) return wait.then(more)
        const n = Math.min(slotBytes, part.length - at)
        ring.publish({ kind: "update", lane }, [n === part.length ? part : part.subarray(at, at + n)])
        at += n
      }
      return undefined
    }
    return more()
  }
  const expect = (index: number, expected: Checksum.Checksum) => {
    const { algorithm, hex } = Checksum.parse(expected)
    return { lane, algorithm, index, expected: hex }
  }
  return {
    room,
    begin: (index, expected) => ring.publish({ kind: "begin", ...expect(index, expected) }),
    update,
    end: () => ring.publish({ kind: "digest", lane }),
    whole: (index, expected, parts) => ring.publish({ kind: "whole", ...expect(index, expected) }, parts),
    mismatch: () => ring.mismatch(lane),
    drained: () => ring.reached(ring.head())
  }
})
