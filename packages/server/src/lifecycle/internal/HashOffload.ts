/**
 * A running hash of one stream at a time, on this thread or on a hashing ring of its own: the
 * unpacker hashes a whole archive with it beside its members' hashes in `put` (on the shared
 * ring), so the two hashes run on two cores instead of taking turns on one.
 */
import { Checksum } from "@ccat/core"
import * as HashRing from "@ccat/core/node/HashRing"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash, type Hash } from "node:crypto"

/** A running hash of one member at a time. */
export interface MemberHasher {
  /** Starts a new hash (node crypto algorithm name). */
  readonly begin: (algorithm: string) => Effect.Effect<void>
  readonly update: (part: Uint8Array) => Effect.Effect<void>
  /** The hex digest of everything since `begin`. */
  readonly digest: Effect.Effect<string>
}

/** Hashing on the calling thread: for small members and archives, where a worker is not worth it. */
export const local = (): MemberHasher => {
  let hash: Hash | undefined
  return {
    begin: (algorithm) => Effect.sync(() => void (hash = createHash(algorithm))),
    update: (part) => Effect.sync(() => void hash!.update(part)),
    digest: Effect.sync(() => hash!.digest("hex"))
  }
}

/** Waits for the ring when it says so; a dead worker is a defect. */
const waitFor = (wait: () => Promise<void> | undefined): Effect.Effect<void> =>
  Effect.suspend(() => {
    const pending = wait()
    return pending === undefined ? Effect.void : Effect.promise(() => pending)
  })

const byNodeName = new Map(Object.entries(Checksum.nodeHashName).map(([algorithm, name]) => [name, algorithm as Checksum.Algorithm]))

/** A hasher on a ring of its own for the scope's lifetime (one member at a time, in order); on this thread where no worker starts. */
export const make: Effect.Effect<MemberHasher, never, Scope.Scope> = Effect.map(HashRing.make(1), (ring): MemberHasher => {
  if (ring === undefined) return local()
  const lane = 0
  /** Publishes one command in the next slot, first waiting (without blocking) for the slot to be free. */
  const publish = (command: HashRing.Command, part?: Uint8Array) =>
    Effect.zipRight(waitFor(() => ring.room()), Effect.sync(() => ring.publish(command, part === undefined ? undefined : [part])))
  return {
    begin: (name) =>
      Effect.suspend(() => {
        const algorithm = byNodeName.get(name)
        return algorithm === undefined
          ? Effect.dieMessage(`the hashing worker has no ${name}`)
          : publish({ kind: "begin", lane, algorithm })
      }),
    update: (part) =>
      part.length <= HashRing.slotBytes
        ? publish({ kind: "update", lane }, part)
        : Effect.forEach(
          Array.from(
            { length: Math.ceil(part.length / HashRing.slotBytes) },
            (_, i) => part.subarray(i * HashRing.slotBytes, Math.min(part.length, (i + 1) * HashRing.slotBytes))
          ),
          (piece) => publish({ kind: "update", lane }, piece),
          { discard: true }
        ),
    digest: Effect.zipRight(
      publish({ kind: "digest", lane }),
      Effect.zipRight(waitFor(() => ring.reached(ring.head())), Effect.sync(() => ring.digest(lane)))
    )
  }
})
