/**
 * A running hash on a worker thread, one stream at a time: the unpacker hashes a whole archive
 * with it beside its members' hashes in `put` (the packager checks members with
 * `MemberVerifier`, which needs no digest back per member). SHA-256 runs at about 1.9 GB/s per
 * core, so doing both on one thread caps the pass below what two processes reach.
 * The bytes are copied into a fixed ring of shared slots (a memcpy, no allocation) and hashed
 * there by a worker, so memory stays bounded and the second core does the second hash; the two
 * threads hand slots over through shared counters (`Atomics`), not messages.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash, type Hash } from "node:crypto"
import { Worker } from "node:worker_threads"
import { waitAsync } from "./WaitAsync.js"

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

/** The algorithms a worker can be asked for, by index (a command carries a number, not a name). */
const algorithms = ["sha256", "sha1", "sha512", "md5", "blake2b512"] as const

// Control words in a shared Int32Array. The producer (this thread) owns HEAD and the commands it
// has not yet published; the worker owns TAIL and the digest area. A command occupies one slot
// of the ring whether or not it carries bytes, so one counter orders everything.
const HEAD = 0
const TAIL = 1
const STOP = 2
const DIGEST_LENGTH = 3
const commandBase = 4 // per slot: kind, length or algorithm
const digestBase = commandBase + 2 * slots // up to 128 hex characters, one per word
const controlWords = digestBase + 128

const BEGIN = 1
const UPDATE = 2
const DIGEST = 3

/**
 * The worker: waits on HEAD with `Atomics.wait` (blocking is what a worker is for), runs each
 * published command in order and advances TAIL, waking this thread. No message per chunk: a
 * `postMessage` round trip per MiB cost about as much as hashing the MiB under load here.
 */
const workerSource = `
const { workerData } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const bytes = new Uint8Array(workerData.data)
const control = new Int32Array(workerData.control)
const { slotSize, slots, algorithms, HEAD, TAIL, STOP, DIGEST_LENGTH, commandBase, digestBase, BEGIN, UPDATE, DIGEST } = workerData
let hash
let tail = 0
for (;;) {
  while (Atomics.load(control, HEAD) === tail) {
    if (Atomics.load(control, STOP) === 1) process.exit(0)
    Atomics.wait(control, HEAD, tail, 1000)
  }
  const slot = tail % slots
  const kind = control[commandBase + 2 * slot]
  const arg = control[commandBase + 2 * slot + 1]
  if (kind === BEGIN) hash = createHash(algorithms[arg])
  else if (kind === UPDATE) hash.update(bytes.subarray(slot * slotSize, slot * slotSize + arg))
  else if (kind === DIGEST) {
    const hex = hash.digest("hex")
    for (let i = 0; i < hex.length; i++) control[digestBase + i] = hex.charCodeAt(i)
    control[DIGEST_LENGTH] = hex.length
  }
  tail++
  Atomics.store(control, TAIL, tail)
  Atomics.notify(control, TAIL)
}
`

/** A worker-thread hasher for the scope's lifetime (one member at a time, in order). */
export const make: Effect.Effect<MemberHasher, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const data = new SharedArrayBuffer(slotSize * slots)
      const control = new SharedArrayBuffer(controlWords * 4)
      const worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          data,
          control,
          slotSize,
          slots,
          algorithms,
          HEAD,
          TAIL,
          STOP,
          DIGEST_LENGTH,
          commandBase,
          digestBase,
          BEGIN,
          UPDATE,
          DIGEST
        }
      })
      return { data, control: new Int32Array(control), worker }
    }),
    ({ control, worker }) =>
      Effect.promise(() => {
        Atomics.store(control, STOP, 1)
        Atomics.notify(control, HEAD)
        return worker.terminate()
      })
  ),
  ({ control, data, worker }): MemberHasher => {
    const bytes = new Uint8Array(data)
    let head = 0
    let failure: unknown
    worker.on("error", (e) => (failure = e))
    worker.on("exit", (code) => {
      if (Atomics.load(control, STOP) !== 1) failure ??= new Error(`hashing worker exited with code ${code}`)
    })
    /** Resolves once the worker's TAIL reached `target`; checks for a dead worker every second. */
    const tailReached = (target: number): Effect.Effect<void> =>
      Effect.suspend(function loop(): Effect.Effect<void> {
        if (failure !== undefined) return Effect.die(failure)
        const tail = Atomics.load(control, TAIL)
        if (tail >= target) return Effect.void
        const waiting = waitAsync(control, TAIL, tail, 1000)
        return waiting.async ? Effect.flatMap(Effect.promise(() => waiting.value), () => Effect.suspend(loop)) : Effect.suspend(loop)
      })
    /** Publishes one command in the next slot, first waiting for the slot to be free. */
    const publish = (kind: number, arg: number, piece?: Uint8Array) =>
      Effect.zipRight(
        Effect.suspend(() => tailReached(head - slots + 1)),
        Effect.sync(() => {
          const slot = head % slots
          if (piece !== undefined) bytes.set(piece, slot * slotSize)
          control[commandBase + 2 * slot] = kind
          control[commandBase + 2 * slot + 1] = arg
          head++
          Atomics.store(control, HEAD, head)
          Atomics.notify(control, HEAD)
        })
      )
    const update = (part: Uint8Array): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (part.length <= slotSize) return publish(UPDATE, part.length, part)
        return Effect.forEach(
          Array.from({ length: Math.ceil(part.length / slotSize) }, (_, i) => part.subarray(i * slotSize, Math.min(part.length, (i + 1) * slotSize))),
          (piece) => publish(UPDATE, piece.length, piece),
          { discard: true }
        )
      })
    return {
      begin: (algorithm) =>
        Effect.suspend(() => {
          const index = algorithms.indexOf(algorithm as typeof algorithms[number])
          return index < 0 ? Effect.dieMessage(`the hashing worker has no ${algorithm}`) : publish(BEGIN, index)
        }),
      update,
      digest: Effect.suspend(() =>
        Effect.zipRight(
          publish(DIGEST, 0),
          Effect.zipRight(
            Effect.suspend(() => tailReached(head)),
            Effect.sync(() => {
              const length = control[DIGEST_LENGTH]
              let hex = ""
              for (let i = 0; i < length; i++) hex += String.fromCharCode(control[digestBase + i])
              return hex
            })
          )
        )
      )
    }
  }
)
