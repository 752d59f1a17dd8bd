/**
 * Members' checksums checked against their records, on a worker thread or on this one. A
 * package is hashed twice in its one pass (each file against its filed checksum, and the whole
 * tar in the destination's `put`, on the storage drivers' hashing worker). Were the files'
 * hashes on this thread, it would do the SHA-256 of every byte on top of reading and writing,
 * the one busy core of two while the other waits.
 *
 * The worker needs no answer per member: each command carries the expected digest, the worker
 * compares, and records only the first mismatch (members arrive in archive order, so it is the
 * lowest index). The writer reads that record between members for free (one `Atomics.load`),
 * and waits for the worker only when the ring is full and once before the archive ends, so a
 * small file costs one memcpy into the ring and no round trip. Bytes are copied into a fixed
 * ring of shared slots, so memory stays bounded; threads hand slots over through shared
 * counters (`Atomics`), not messages.
 */
import { Checksum } from "@ccat/core"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash, type Hash } from "node:crypto"
import { Worker } from "node:worker_threads"
import { waitAsync } from "./WaitAsync.js"

/** The first member whose bytes hashed to something other than its record. */
export interface Mismatch {
  readonly index: number
  readonly actual: Checksum.Checksum
}

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
export const slotBytes = 1024 * 1024

/** Slots in the ring: at most this many commands are waiting for the worker. */
const slots = 16

/** Longest hex digest of the algorithms below (SHA-512, BLAKE2b-512). */
const maxHex = 128

/** The algorithms a worker can be asked for, by index (a command carries a number, not a name). */
const algorithms = Object.keys(Checksum.nodeHashName) as ReadonlyArray<Checksum.Algorithm>

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

// Control words of a shared Int32Array. This thread owns HEAD and the command words of slots
// it has not yet published; the worker owns TAIL and the mismatch record.
const HEAD = 0
const TAIL = 1
const STOP = 2
/** Index of the first mismatching member, -1 while there is none. */
const MISMATCH = 3
/** The algorithm of its checksum, by index. */
const MISMATCH_ALGORITHM = 4
/** Length, then the hex characters of the mismatching digest. */
const actualBase = 5
const commandBase = actualBase + 1 + maxHex
/** Per slot: kind, byte length, member index, algorithm, then the expected hex's length and characters. */
const commandWords = 5 + maxHex
const controlWords = commandBase + commandWords * slots

const BEGIN = 1
const UPDATE = 2
const END = 3
const WHOLE = 4

/**
 * The worker: waits on HEAD with `Atomics.wait` (blocking is what a worker is for; the 1 s
 * timeout only bounds how long a stopping scope waits for it), runs each command in ring order
 * and advances TAIL, waking this thread's waiters.
 */
const workerSource = `
const { workerData } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const bytes = new Uint8Array(workerData.data)
const control = new Int32Array(workerData.control)
const { slotBytes, slots, algorithms, HEAD, TAIL, STOP, MISMATCH, MISMATCH_ALGORITHM, actualBase, commandBase, commandWords, BEGIN, UPDATE, END, WHOLE } = workerData
let hash
let index = -1
let algorithm = 0
let expected = ""
let tail = 0
const textAt = (at) => {
  let s = ""
  for (let i = 0; i < control[at]; i++) s += String.fromCharCode(control[at + 1 + i])
  return s
}
const compare = (member, used, wanted, actual) => {
  if (actual === wanted || Atomics.load(control, MISMATCH) !== -1) return
  for (let i = 0; i < actual.length; i++) control[actualBase + 1 + i] = actual.charCodeAt(i)
  control[actualBase] = actual.length
  control[MISMATCH_ALGORITHM] = used
  Atomics.store(control, MISMATCH, member)
}
for (;;) {
  while (Atomics.load(control, HEAD) === tail) {
    if (Atomics.load(control, STOP) === 1) process.exit(0)
    Atomics.wait(control, HEAD, tail, 1000)
  }
  const slot = tail % slots
  const at = commandBase + commandWords * slot
  const kind = control[at]
  const data = bytes.subarray(slot * slotBytes, slot * slotBytes + control[at + 1])
  if (kind === BEGIN) {
    algorithm = control[at + 3]
    hash = createHash(algorithms[algorithm])
    index = control[at + 2]
    expected = textAt(at + 4)
  } else if (kind === UPDATE) hash.update(data)
  else if (kind === END) compare(index, algorithm, expected, hash.digest("hex"))
  else if (kind === WHOLE) {
    compare(control[at + 2], control[at + 3], textAt(at + 4), createHash(algorithms[control[at + 3]]).update(data).digest("hex"))
  }
  tail++
  Atomics.store(control, TAIL, tail)
  Atomics.notify(control, TAIL)
}
`

/** A worker-thread verifier for the scope's lifetime. */
export const make: Effect.Effect<Verifier, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const data = new SharedArrayBuffer(slotBytes * slots)
      const control = new Int32Array(new SharedArrayBuffer(controlWords * 4))
      control[MISMATCH] = -1
      const worker = new Worker(workerSource, {
        eval: true,
        workerData: {
          data,
          control: control.buffer,
          slotBytes,
          slots,
          algorithms: algorithms.map((a) => Checksum.nodeHashName[a]),
          HEAD,
          TAIL,
          STOP,
          MISMATCH,
          MISMATCH_ALGORITHM,
          actualBase,
          commandBase,
          commandWords,
          BEGIN,
          UPDATE,
          END,
          WHOLE
        }
      })
      return { bytes: new Uint8Array(data), control, worker }
    }),
    ({ control, worker }) =>
      Effect.promise(() => {
        Atomics.store(control, STOP, 1)
        Atomics.notify(control, HEAD)
        return worker.terminate()
      })
  ),
  ({ bytes, control, worker }): Verifier => {
    let head = 0
    let failure: Error | undefined
    worker.on("error", (e) => (failure ??= e))
    worker.on("exit", (code) => {
      if (Atomics.load(control, STOP) !== 1) failure ??= new Error(`the member hashing worker exited with code ${code}`)
    })
    /** Resolves once TAIL reached `target`; rejects if the worker is gone (checked every second). */
    const reached = async (target: number): Promise<void> => {
      for (;;) {
        if (failure !== undefined) throw failure
        const tail = Atomics.load(control, TAIL)
        if (tail >= target) return
        const waiting = waitAsync(control, TAIL, tail, 1000)
        if (waiting.async) await waiting.value
      }
    }
    const room = () => {
      if (failure !== undefined) return Promise.reject(failure)
      return Atomics.load(control, TAIL) > head - slots ? undefined : reached(head - slots + 1)
    }
    const writeText = (at: number, text: string) => {
      // longer than any digest: recorded as empty, which no digest equals
      if (text.length > maxHex) return void (control[at] = 0)
      control[at] = text.length
      for (let i = 0; i < text.length; i++) control[at + 1 + i] = text.charCodeAt(i)
    }
    const publish = (kind: number, length: number, index: number, expected?: Checksum.Checksum) => {
      const at = commandBase + commandWords * (head % slots)
      control[at] = kind
      control[at + 1] = length
      control[at + 2] = index
      if (expected !== undefined) {
        const { algorithm, hex } = Checksum.parse(expected)
        control[at + 3] = algorithms.indexOf(algorithm)
        writeText(at + 4, hex)
      }
      head++
      Atomics.store(control, HEAD, head)
      Atomics.notify(control, HEAD)
    }
    const update = (part: Uint8Array): Promise<void> | undefined => {
      let at = 0
      const more = (): Promise<void> | undefined => {
        while (at < part.length) {
          const wait = room()
          if (wait !== undefined) return wait.then(more)
          const n = Math.min(slotBytes, part.length - at)
          bytes.set(n === part.length ? part : part.subarray(at, at + n), (head % slots) * slotBytes)
          publish(UPDATE, n, -1)
          at += n
        }
        return undefined
      }
      return more()
    }
    return {
      room,
      begin: (index, expected) => publish(BEGIN, 0, index, expected),
      update,
      end: () => publish(END, 0, -1),
      whole: (index, expected, parts) => {
        let at = (head % slots) * slotBytes
        const start = at
        for (const part of parts) {
          if (at + part.length > start + slotBytes) throw new RangeError(`a whole member is at most ${slotBytes} bytes`)
          bytes.set(part, at)
          at += part.length
        }
        publish(WHOLE, at - start, index, expected)
      },
      mismatch: () => {
        const index = Atomics.load(control, MISMATCH)
        if (index === -1) return undefined
        let hex = ""
        for (let i = 0; i < control[actualBase]; i++) hex += String.fromCharCode(control[actualBase + 1 + i])
        return { index, actual: Checksum.make(algorithms[control[MISMATCH_ALGORITHM]], hex) }
      },
      drained: () => {
        if (failure !== undefined) return Promise.reject(failure)
        return Atomics.load(control, TAIL) >= head ? undefined : reached(head)
      }
    }
  }
)
