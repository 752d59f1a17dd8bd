/**
 * Hashing on a worker thread fed through a fixed ring of shared memory: the one way the platform
 * moves a hash off the calling thread. SHA-256 runs at about 1.9 GB/s per core, so a pass that
 * reads, writes and hashes on one thread takes turns where two cores could overlap; here each
 * byte is copied (a memcpy, no allocation) into one of `slots` slots and hashed by the worker,
 * so memory stays bounded whatever the object sizes. The threads hand slots over through shared
 * counters (`Atomics`), not messages: a `postMessage` round trip per MiB cost about as much as
 * hashing the MiB under load here.
 *
 * A ring serves `lanes` hashes at once, each with its own hash state in the worker; commands run
 * in ring order, so each lane sees its own bytes in sequence. A lane's hash can end with its
 * digest read back (`digest`), or compared in the worker with an expected digest so that no
 * answer is needed per member, only the first mismatch recorded (`mismatch`).
 *
 * The worker never keeps the process alive: it is unref'd, and ref'd only while this thread
 * waits for it. `shared` is the process-wide ring (the storage drivers' puts); `make` is a
 * ring of one's own for a scope (a packager or unpacker hashing beside the puts).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import { Worker } from "node:worker_threads"
import * as Checksum from "../Checksum.js"
import type * as StorageHasher from "../StorageHasher.js"

/** Bytes per ring slot: a command carries at most this many. */
export const slotBytes = 1024 * 1024

/** Slots in the ring: at most this many commands (MiB) are published and not yet run. */
export const slots = 16

/** Lanes of the shared ring: puts hashing at once beyond this hash on their own thread. */
export const sharedLanes = 64

/** Longest hex digest of the algorithms (SHA-512, BLAKE2b-512). */
const maxHex = 128

/** The algorithms, by index (a command carries a number, not a name). */
const algorithms = Object.keys(Checksum.nodeHashName) as ReadonlyArray<Checksum.Algorithm>

// Control words of a shared Int32Array. This thread owns HEAD (commands published) and the words
// of slots not yet published; the worker owns TAIL (commands run) and each lane's digest and
// mismatch words, which a lane's owner reads only once its command has run.
const HEAD = 0
const TAIL = 1
const STOP = 2
const commandBase = 3
/** Per slot: kind, lane, byte length, algorithm, member index (-1: nothing to compare), expected hex (length, characters). */
const commandWords = 6 + maxHex
const laneBase = commandBase + commandWords * slots
/** Per lane: the digest (length, characters), the first mismatch's index (-1: none) and algorithm, its digest. */
const laneWords = 2 * (1 + maxHex) + 2
const mismatchAt = 1 + maxHex

const kinds = { begin: 1, update: 2, digest: 3, whole: 4 } as const

/**
 * The worker: waits for HEAD to move with `Atomics.wait` (blocking is what a worker is for; the
 * 1 s timeout only bounds how long a stopping ring waits for it), runs each command in ring
 * order and advances TAIL, waking every waiter on this thread.
 */
const workerSource = `
const { workerData } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const bytes = new Uint8Array(workerData.data)
const control = new Int32Array(workerData.control)
const { slotBytes, slots, algorithms, HEAD, TAIL, STOP, commandBase, commandWords, laneBase, laneWords, mismatchAt, kinds } = workerData
const lanes = []
let tail = 0
const textAt = (at) => {
  let s = ""
  for (let i = 0; i < control[at]; i++) s += String.fromCharCode(control[at + 1 + i])
  return s
}
const writeText = (at, text) => {
  for (let i = 0; i < text.length; i++) control[at + 1 + i] = text.charCodeAt(i)
  control[at] = text.length
}
const settle = (lane, index, algorithm, expected, hex) => {
  const at = laneBase + laneWords * lane
  writeText(at, hex)
  if (index < 0 || hex === expected || Atomics.load(control, at + mismatchAt) !== -1) return
  writeText(at + mismatchAt + 2, hex)
  control[at + mismatchAt + 1] = algorithm
  Atomics.store(control, at + mismatchAt, index)
}
for (;;) {
  while (Atomics.load(control, HEAD) === tail) {
    if (Atomics.load(control, STOP) === 1) process.exit(0)
    Atomics.wait(control, HEAD, tail, 1000)
  }
  const slot = tail % slots
  const at = commandBase + commandWords * slot
  const kind = control[at], lane = control[at + 1], length = control[at + 2], algorithm = control[at + 3], index = control[at + 4]
  const data = bytes.subarray(slot * slotBytes, slot * slotBytes + length)
  if (kind === kinds.begin) lanes[lane] = { hash: createHash(algorithms[algorithm]), index, algorithm, expected: textAt(at + 5) }
  else if (kind === kinds.update) lanes[lane].hash.update(data)
  else if (kind === kinds.digest) {
    const l = lanes[lane]
    lanes[lane] = undefined
    settle(lane, l.index, l.algorithm, l.expected, l.hash.digest("hex"))
  } else if (kind === kinds.whole) settle(lane, index, algorithm, textAt(at + 5), createHash(algorithms[algorithm]).update(data).digest("hex"))
  tail++
  Atomics.store(control, TAIL, tail)
  Atomics.notify(control, TAIL)
}
`

/** `Atomics.waitAsync` (Node 16+; its type is in lib es2024, newer than this project's lib). */
const waitAsync = (Atomics as unknown as {
  readonly waitAsync: (
    array: Int32Array,
    index: number,
    value: number,
    timeout: number
  ) => { readonly async: false; readonly value: string } | { readonly async: true; readonly value: Promise<string> }
}).waitAsync

/** How long this thread blocks for a worker that makes no progress before it gives up. */
const stallMillis = 30_000

/** One command: `begin` a lane's hash (with a digest to compare it with at its end), `update` it, `digest` it, or hash a `whole` member at once. */
export interface Command {
  readonly kind: keyof typeof kinds
  readonly lane: number
  readonly algorithm?: Checksum.Algorithm | undefined
  /** With `expected`: the member whose digest is compared; its index is what a mismatch reports. */
  readonly index?: number | undefined
  readonly expected?: string | undefined
}

/** The first member of a lane whose digest differed from the expected one. */
export interface Mismatch {
  readonly index: number
  readonly actual: Checksum.Checksum
}

/** A running worker and its ring. */
export interface Ring {
  readonly lanes: number
  /** Commands published so far. */
  readonly head: () => number
  /** Why the worker is gone, once it is. */
  readonly failure: () => Error | undefined
  /** A free lane, or undefined when all are taken. */
  readonly takeLane: () => number | undefined
  /** Hands a lane back; a comparing lane must be drained first. */
  readonly releaseLane: (lane: number) => void
  /** Undefined once the worker has run every command before `target`; else a promise of it (rejected if the worker died). */
  readonly reached: (target: number) => Promise<void> | undefined
  /** Blocks this thread until the worker has run every command before `target`: only for callers that cannot wait. */
  readonly reachedBlocking: (target: number) => void
  /** Undefined when `commands` more can be published now; else a promise of room for them. */
  readonly room: (commands?: number) => Promise<void> | undefined
  /** Publishes one command with its bytes (at most `slotBytes` in all) in the next slot, which the caller made sure is free. */
  readonly publish: (command: Command, parts?: ReadonlyArray<Uint8Array>) => void
  /** The hex digest a lane's last `digest` or `whole` wrote, once it ran. */
  readonly digest: (lane: number) => string
  /** The first mismatch of a lane's compared members, once they ran. */
  readonly mismatch: (lane: number) => Mismatch | undefined
  /** Stops the worker. */
  readonly close: () => Promise<void>
}

/** Starts a worker with a ring of `lanes` lanes; undefined where no worker can start (hash on this thread then). */
export const start = (lanes: number): Ring | undefined => {
  let worker: Worker
  const data = new SharedArrayBuffer(slotBytes * slots)
  const control = new Int32Array(new SharedArrayBuffer((laneBase + laneWords * lanes) * 4))
  for (let lane = 0; lane < lanes; lane++) control[laneBase + laneWords * lane + mismatchAt] = -1
  try {
    worker = new Worker(workerSource, {
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
        commandBase,
        commandWords,
        laneBase,
        laneWords,
        mismatchAt,
        kinds
      }
    })
  } catch {
    return undefined
  }
  worker.unref()
  const bytes = new Uint8Array(data)
  const free = Array.from({ length: lanes }, (_, i) => lanes - 1 - i)
  let head = 0
  let failure: Error | undefined
  let waiters = 0
  worker.on("error", (e) => (failure ??= e))
  worker.on("exit", (code) => {
    if (Atomics.load(control, STOP) !== 1) failure ??= new Error(`the hashing worker exited with code ${code}`)
  })
  const tail = () => Atomics.load(control, TAIL)
  const wait = async (target: number): Promise<void> => {
    if (++waiters === 1) worker.ref()
    try {
      for (;;) {
        if (failure !== undefined) throw failure
        const now = tail()
        if (now >= target) return
        const waiting = waitAsync(control, TAIL, now, 1000)
        if (waiting.async) await waiting.value
      }
    } finally {
      if (--waiters === 0) worker.unref()
    }
  }
  const reached = (target: number) => failure !== undefined ? Promise.reject(failure) : tail() >= target ? undefined : wait(target)
  const textAt = (at: number) => {
    let s = ""
    for (let i = 0; i < control[at]; i++) s += String.fromCharCode(control[at + 1 + i])
    return s
  }
  return {
    lanes,
    head: () => head,
    failure: () => failure,
    takeLane: () => free.pop(),
    releaseLane: (lane) => {
      control[laneBase + laneWords * lane + mismatchAt] = -1
      free.push(lane)
    },
    reached,
    reachedBlocking: (target) => {
      const deadline = Date.now() + stallMillis
      for (;;) {
        if (failure !== undefined) throw failure
        const now = tail()
        if (now >= target) return
        if (Date.now() > deadline) throw new Error("the hashing worker made no progress")
        Atomics.wait(control, TAIL, now, 100)
      }
    },
    room: (commands = 1) => reached(head - slots + commands),
    publish: (command, parts) => {
      const slot = head % slots
      let length = 0
      for (const part of parts ?? []) {
        if (length + part.length > slotBytes) throw new RangeError(`a command carries at most ${slotBytes} bytes`)
        bytes.set(part, slot * slotBytes + length)
        length += part.length
      }
      const at = commandBase + commandWords * slot
      control[at] = kinds[command.kind]
      control[at + 1] = command.lane
      control[at + 2] = length
      control[at + 3] = command.algorithm === undefined ? 0 : algorithms.indexOf(command.algorithm)
      control[at + 4] = command.expected === undefined ? -1 : command.index ?? 0
      // an expected digest longer than any is recorded as empty, which no digest equals
      const expected = command.expected === undefined || command.expected.length > maxHex ? "" : command.expected
      for (let i = 0; i < expected.length; i++) control[at + 6 + i] = expected.charCodeAt(i)
      control[at + 5] = expected.length
      head++
      Atomics.store(control, HEAD, head)
      Atomics.notify(control, HEAD)
    },
    digest: (lane) => textAt(laneBase + laneWords * lane),
    mismatch: (lane) => {
      const at = laneBase + laneWords * lane + mismatchAt
      const index = Atomics.load(control, at)
      return index === -1 ? undefined : { index, actual: Checksum.make(algorithms[control[at + 1]]!, textAt(at + 2)) }
    },
    close: () => {
      Atomics.store(control, STOP, 1)
      Atomics.notify(control, HEAD)
      return worker.terminate().then(() => undefined)
    }
  }
}

/** A ring of one's own for the scope's lifetime (its worker stopped at the end); undefined where no worker can start. */
export const make = (lanes = 1): Effect.Effect<Ring | undefined, never, Scope.Scope> =>
  Effect.acquireRelease(Effect.sync(() => start(lanes)), (ring) => ring === undefined ? Effect.void : Effect.promise(ring.close))

let sharedRing: Ring | undefined

/** The process-wide ring, started on first use and again after its worker died; undefined where none can start. */
export const shared = (): Ring | undefined => {
  if (sharedRing === undefined || sharedRing.failure() !== undefined) sharedRing = start(sharedLanes)
  return sharedRing
}

/** A lane that a hasher dropped without reading its digest goes back when the hasher is collected. */
const abandoned = new FinalizationRegistry<{ readonly ring: Ring; readonly lane: number }>(({ ring, lane }) => {
  // its last commands may still be in the ring: they run before the next owner's begin
  ring.releaseLane(lane)
})

/** A hasher on the calling thread, for when the shared ring has no lane free or cannot run. */
const local = (algorithm: Checksum.Algorithm): StorageHasher.Hasher => {
  const hash = createHash(Checksum.nodeHashName[algorithm])
  return { update: (chunk) => void hash.update(chunk), digest: () => hash.digest("hex") }
}

/**
 * The hasher factory to lift a driver with (`StorageDriver.make(minimal, { hasher })`): each
 * hasher hashes on the shared ring when a lane is free, on the calling thread otherwise. Its
 * `update` blocks only while the ring is full; `ready` lets a caller wait without blocking.
 */
export const hasher: StorageHasher.HasherFactory = (algorithm) => {
  const ring = shared()
  const lane = ring?.takeLane()
  if (ring === undefined || lane === undefined) return local(algorithm)
  const token = {}
  let lastSlots = 1
  let digestAt: number | undefined
  let finished = false
  const publishBlocking = (command: Command, parts?: ReadonlyArray<Uint8Array>) => {
    ring.reachedBlocking(ring.head() - slots + 1)
    ring.publish(command, parts)
  }
  publishBlocking({ kind: "begin", lane, algorithm })
  const self: StorageHasher.Hasher = {
    update: (chunk) => {
      if (digestAt !== undefined) throw new Error("update after digest")
      // at most the whole ring: a chunk larger than that is copied in as slots come free anyway
      lastSlots = Math.min(slots, Math.max(1, Math.ceil(chunk.length / slotBytes)))
      for (let at = 0; at < chunk.length; at += slotBytes) {
        publishBlocking({ kind: "update", lane }, [chunk.subarray(at, Math.min(chunk.length, at + slotBytes))])
      }
    },
    ready: (final) => {
      if (ring.failure() !== undefined) return Promise.reject(ring.failure())
      // not final: room for a chunk like the last one, so the next update copies without blocking
      if (!final) return ring.room(lastSlots)
      if (digestAt === undefined) {
        const wait = ring.room()
        if (wait !== undefined) return wait.then(() => self.ready!(true))
        ring.publish({ kind: "digest", lane })
        digestAt = ring.head()
      }
      return ring.reached(digestAt)
    },
    digest: () => {
      if (digestAt === undefined) {
        publishBlocking({ kind: "digest", lane })
        digestAt = ring.head()
      }
      ring.reachedBlocking(digestAt)
      const hex = ring.digest(lane)
      if (!finished) {
        finished = true
        abandoned.unregister(token)
        ring.releaseLane(lane)
      }
      return hex
    }
  }
  abandoned.register(self, { ring, lane }, token)
  return self
}
