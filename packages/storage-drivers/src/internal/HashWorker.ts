/**
 * A hasher for the lifted storage service that hashes on a worker thread. A put's bytes are
 * read (thread pool), hashed (this thread) and written (thread pool); SHA-256 alone took about
 * 1.1 s of this thread's 1.9 busy seconds for a 2 GiB put in the profile, in turn with the
 * rest. Here every byte is copied (a memcpy) into a fixed ring of shared slots and hashed by one
 * process-wide worker, so the hash runs on the second core while this thread reads and writes.
 * Each byte is still hashed exactly once, in the order it was written.
 *
 * One worker serves every put at once: a hasher holds one of `lanes` lanes (its own hash state
 * in the worker) and its commands go through the shared ring in order; the worker runs them in
 * ring order, so each lane sees its own bytes in sequence. Memory is the ring, whatever the
 * object sizes. A put's `update` copies into free slots and blocks only while the ring is full
 * (the worker hashes a slot in about 0.5 ms, faster than a put fills one); the digest is waited
 * for asynchronously (`ready`). Threads hand slots over through shared counters (`Atomics`), not messages (a
 * `postMessage` round trip per MiB cost about as much as hashing the MiB under load, as the
 * packager's own hashing worker found).
 *
 * The worker is started on first use and never keeps the process alive: it is unref'd, and
 * ref'd only while this thread waits for it. When no lane is free, or the worker cannot be
 * started or has died, a hasher hashes on this thread as before.
 */
import { Checksum, type StorageHasher } from "@ccat/core"
import { createHash } from "node:crypto"
import { Worker } from "node:worker_threads"

/** Bytes per ring slot: a command carries at most this many. */
export const slotBytes = 1024 * 1024

/** Slots in the ring: at most this many MiB are copied and not yet hashed. */
export const slots = 16

/** Hashers the worker serves at once; more at the same time hash on their own thread. */
export const lanes = 64

/** The algorithms the worker runs, by index (a command carries a number, not a name). */
const algorithms: ReadonlyArray<string> = Object.values(Checksum.nodeHashName)

// Control words of a shared Int32Array. This thread owns HEAD (commands published) and the
// command words of slots not yet published; the worker owns TAIL (commands done) and each
// lane's digest words, which a lane's owner reads only after its DIGEST command is done and
// before the lane is handed to anyone else.
const HEAD = 0
const TAIL = 1
const commandBase = 2 // per slot: kind, lane, argument (length or algorithm)
const digestBase = commandBase + 3 * slots // per lane: length, then up to 128 hex characters
const digestWords = 129
const controlWords = digestBase + digestWords * lanes

const BEGIN = 1
const UPDATE = 2
const DIGEST = 3

/**
 * The worker: waits for HEAD to move with `Atomics.wait` (blocking is what a worker is for; the
 * 1 s timeout only bounds how long a terminating process waits for it), runs each command in
 * ring order and advances TAIL, waking every waiter on this thread.
 */
const workerSource = `
const { workerData } = require("node:worker_threads")
const { createHash } = require("node:crypto")
const bytes = new Uint8Array(workerData.data)
const control = new Int32Array(workerData.control)
const { slotBytes, slots, algorithms, HEAD, TAIL, commandBase, digestBase, digestWords, BEGIN, UPDATE, DIGEST } = workerData
const hashes = []
let tail = 0
for (;;) {
  while (Atomics.load(control, HEAD) === tail) Atomics.wait(control, HEAD, tail, 1000)
  const slot = tail % slots
  const kind = control[commandBase + 3 * slot]
  const lane = control[commandBase + 3 * slot + 1]
  const arg = control[commandBase + 3 * slot + 2]
  if (kind === BEGIN) hashes[lane] = createHash(algorithms[arg])
  else if (kind === UPDATE) hashes[lane].update(bytes.subarray(slot * slotBytes, slot * slotBytes + arg))
  else if (kind === DIGEST) {
    const hex = hashes[lane].digest("hex")
    hashes[lane] = undefined
    const at = digestBase + digestWords * lane
    for (let i = 0; i < hex.length; i++) control[at + 1 + i] = hex.charCodeAt(i)
    control[at] = hex.length
  }
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

/** One running worker and the state this thread keeps about it. */
interface Pool {
  readonly worker: Worker
  readonly bytes: Uint8Array
  readonly control: Int32Array
  readonly freeLanes: Array<number>
  /** Commands published so far (HEAD as this thread knows it). */
  head: number
  /** Why the worker is gone, once it is. */
  failure: Error | undefined
  /** Waits in progress; the worker is ref'd while there is one, so the process stays up for it. */
  waiters: number
}

let pool: Pool | undefined

const start = (): Pool | undefined => {
  try {
    const data = new SharedArrayBuffer(slotBytes * slots)
    const control = new SharedArrayBuffer(controlWords * 4)
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { data, control, slotBytes, slots, algorithms, HEAD, TAIL, commandBase, digestBase, digestWords, BEGIN, UPDATE, DIGEST }
    })
    worker.unref()
    const started: Pool = {
      worker,
      bytes: new Uint8Array(data),
      control: new Int32Array(control),
      freeLanes: Array.from({ length: lanes }, (_, i) => lanes - 1 - i),
      head: 0,
      failure: undefined,
      waiters: 0
    }
    const gone = (failure: Error) => {
      started.failure ??= failure
      if (pool === started) pool = undefined
    }
    worker.on("error", gone)
    worker.on("exit", (code) => gone(new Error(`the hashing worker exited with code ${code}`)))
    return started
  } catch {
    return undefined
  }
}

/** A lane that a hasher dropped without reading its digest goes back when the hasher is collected. */
const abandoned = new FinalizationRegistry<{ readonly pool: Pool; readonly lane: number }>(({ pool, lane }) => {
  // its last commands may still be in the ring: they run before the next owner's BEGIN
  pool.freeLanes.push(lane)
})

/** Commands done (TAIL). */
const tailOf = (p: Pool) => Atomics.load(p.control, TAIL)

/** Resolves once TAIL reached `target`; rejects if the worker is gone. */
const reached = (p: Pool, target: number): Promise<void> => {
  p.waiters++
  if (p.waiters === 1) p.worker.ref()
  const loop = async (): Promise<void> => {
    for (;;) {
      if (p.failure !== undefined) throw p.failure
      const tail = tailOf(p)
      if (tail >= target) return
      const waiting = waitAsync(p.control, TAIL, tail, 1000)
      if (waiting.async) await waiting.value
    }
  }
  return loop().finally(() => {
    p.waiters--
    if (p.waiters === 0) p.worker.unref()
  })
}

/** Blocks this thread until TAIL reached `target`: only for callers that did not wait with `ready`. */
const reachedBlocking = (p: Pool, target: number): void => {
  const deadline = Date.now() + stallMillis
  for (;;) {
    if (p.failure !== undefined) throw p.failure
    const tail = tailOf(p)
    if (tail >= target) return
    if (Date.now() > deadline) throw new Error("the hashing worker made no progress")
    Atomics.wait(p.control, TAIL, tail, 100)
  }
}

/** Publishes one command in the next slot, which the caller made sure is free. */
const publish = (p: Pool, kind: number, lane: number, arg: number, piece?: Uint8Array) => {
  const slot = p.head % slots
  if (piece !== undefined) p.bytes.set(piece, slot * slotBytes)
  p.control[commandBase + 3 * slot] = kind
  p.control[commandBase + 3 * slot + 1] = lane
  p.control[commandBase + 3 * slot + 2] = arg
  p.head++
  Atomics.store(p.control, HEAD, p.head)
  Atomics.notify(p.control, HEAD)
}

/** Publishes a command, first blocking until a slot is free (see `Hasher.ready` for the way around it). */
const publishBlocking = (p: Pool, kind: number, lane: number, arg: number, piece?: Uint8Array) => {
  reachedBlocking(p, p.head - slots + 1)
  publish(p, kind, lane, arg, piece)
}

/** A hasher on the calling thread, for when the worker has no lane free or cannot run. */
const local = (algorithm: Checksum.Algorithm): StorageHasher.Hasher => {
  const hash = createHash(Checksum.nodeHashName[algorithm])
  return { update: (chunk) => void hash.update(chunk), digest: () => hash.digest("hex") }
}

const algorithmIndex = (algorithm: Checksum.Algorithm) => algorithms.indexOf(Checksum.nodeHashName[algorithm])

/**
 * The hasher factory to lift a driver with (`StorageDriver.make(minimal, { hasher: factory })`):
 * each hasher hashes on the shared worker when a lane is free, on the calling thread otherwise.
 */
export const factory: StorageHasher.HasherFactory = (algorithm) => {
  if (pool === undefined || pool.failure !== undefined) pool = start()
  const p = pool
  const lane = p?.freeLanes.pop()
  if (p === undefined || lane === undefined) return local(algorithm)
  const token = {}
  let lastSlots = 1
  let digestAt: number | undefined
  let finished = false
  publishBlocking(p, BEGIN, lane, algorithmIndex(algorithm))
  const finish = () => {
    if (finished) return
    finished = true
    abandoned.unregister(token)
    p.freeLanes.push(lane)
  }
  const hasher: StorageHasher.Hasher = {
    update: (chunk) => {
      if (digestAt !== undefined) throw new Error("update after digest")
      // at most the whole ring: a chunk larger than that is copied in as slots come free anyway
      lastSlots = Math.min(slots, Math.max(1, Math.ceil(chunk.length / slotBytes)))
      for (let at = 0; at < chunk.length; at += slotBytes) {
        const piece = chunk.subarray(at, Math.min(chunk.length, at + slotBytes))
        publishBlocking(p, UPDATE, lane, piece.length, piece)
      }
    },
    ready: (final) => {
      if (p.failure !== undefined) return Promise.reject(p.failure)
      if (!final) {
        // room for a chunk like the last one, so the next update copies without blocking
        const target = p.head - slots + lastSlots
        return tailOf(p) >= target ? undefined : reached(p, target)
      }
      if (digestAt === undefined) {
        const free = p.head - slots + 1
        if (tailOf(p) < free) return reached(p, free).then(() => hasher.ready!(true))
        publish(p, DIGEST, lane, 0)
        digestAt = p.head
      }
      return tailOf(p) >= digestAt ? undefined : reached(p, digestAt)
    },
    digest: () => {
      if (digestAt === undefined) {
        publishBlocking(p, DIGEST, lane, 0)
        digestAt = p.head
      }
      reachedBlocking(p, digestAt)
      const at = digestBase + digestWords * lane
      const length = p.control[at]
      let hex = ""
      for (let i = 0; i < length; i++) hex += String.fromCharCode(p.control[at + 1 + i])
      finish()
      return hex
    }
  }
  abandoned.register(hasher, { pool: p, lane }, token)
  return hasher
}
