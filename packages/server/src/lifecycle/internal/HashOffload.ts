/**
 * File checksums computed on a worker thread. A package is hashed twice in its one pass (each
 * file against its filed checksum, and the whole tar for the package checksum, which the
 * destination's `put` does on this thread); SHA-256 runs at about 1.9 GB/s per core, so doing
 * both on one thread caps packaging below what `tar | openssl` reaches with two processes.
 * The bytes are copied into a fixed ring of shared slots (a memcpy, no allocation) and hashed
 * there by a worker, so memory stays bounded and the second core does the second hash.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash, type Hash } from "node:crypto"
import { Worker } from "node:worker_threads"

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

const slotSize = 1024 * 1024
const slots = 16

const workerSource = `
const { parentPort, workerData } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const bytes = new Uint8Array(workerData.buffer)
const slotSize = workerData.slotSize
let hash
parentPort.on("message", (m) => {
  if (m.t === 0) hash = createHash(m.algorithm)
  else if (m.t === 1) {
    hash.update(bytes.subarray(m.slot * slotSize, m.slot * slotSize + m.length))
    parentPort.postMessage({ t: 1, slot: m.slot })
  } else if (m.t === 2) parentPort.postMessage({ t: 2, hex: hash.digest("hex") })
})
`

/** A worker-thread hasher for the scope's lifetime (one member at a time, in order). */
export const make: Effect.Effect<MemberHasher, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const buffer = new SharedArrayBuffer(slotSize * slots)
      const worker = new Worker(workerSource, { eval: true, workerData: { buffer, slotSize } })
      return { buffer, worker }
    }),
    ({ worker }) => Effect.promise(() => worker.terminate())
  ),
  ({ buffer, worker }): MemberHasher => {
    const bytes = new Uint8Array(buffer)
    const free: Array<number> = Array.from({ length: slots }, (_, i) => i)
    let slotWaiter: ((slot: number) => void) | undefined
    let digestWaiter: ((hex: string) => void) | undefined
    let failure: unknown
    worker.on("message", (m: { t: number; slot: number; hex: string }) => {
      if (m.t === 1) {
        const wake = slotWaiter
        slotWaiter = undefined
        if (wake !== undefined) wake(m.slot)
        else free.push(m.slot)
      } else if (m.t === 2) {
        const wake = digestWaiter
        digestWaiter = undefined
        wake?.(m.hex)
      }
    })
    worker.on("error", (e) => (failure = e))
    const acquire = Effect.suspend((): Effect.Effect<number> => {
      if (failure !== undefined) return Effect.die(failure)
      const slot = free.pop()
      return slot !== undefined ? Effect.succeed(slot) : Effect.async<number>((resume) => {
        slotWaiter = (s) => resume(Effect.succeed(s))
      })
    })
    const update = (part: Uint8Array): Effect.Effect<void> =>
      Effect.gen(function*() {
        for (let offset = 0; offset < part.length; offset += slotSize) {
          const piece = part.subarray(offset, Math.min(part.length, offset + slotSize))
          const slot = yield* acquire
          bytes.set(piece, slot * slotSize)
          worker.postMessage({ t: 1, slot, length: piece.length })
        }
      })
    return {
      begin: (algorithm) => Effect.sync(() => worker.postMessage({ t: 0, algorithm })),
      update,
      digest: Effect.suspend(() =>
        failure !== undefined ? Effect.die(failure) : Effect.async<string>((resume) => {
          digestWaiter = (hex) => resume(Effect.succeed(hex))
          worker.postMessage({ t: 2 })
        })
      )
    }
  }
)
