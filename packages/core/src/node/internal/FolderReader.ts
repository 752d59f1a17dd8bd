/**
 * The thread behind `FolderArchive`: its source (a string evaluated in a `Worker`, so the bundled
 * packages need no file of their own), the words of the control array it shares with the
 * stream, and the messages it posts. It follows the disk driver's rules for a key
 * (`storage-drivers/src/internal/DiskPaths.ts`, `existing`), which it cannot import.
 */
import type * as StorageDriver from "../../StorageDriver.js"

// Control words shared with the worker: chunks taken downstream, batches sent, and stop.
/** Chunks taken downstream. */
export const TAKEN = 0
/** Batches of members sent. */
export const SENT = 1
/** Set when the stream ends: the worker stops. */
export const STOP = 2
/** Words of the control array. */
export const controlWords = 3

/**
 * The worker. It blocks (`Atomics.wait`, a 1 s timeout so a stop is seen) for a batch of
 * members or for room among the chunks handed over; a stop is seen there and between members,
 * and ends it with its file closed.
 */
export const source = `
const { workerData, parentPort, receiveMessageOnPort } = require("node:worker_threads")
const fs = require("node:fs")
const path = require("node:path")
const { createHash } = require("node:crypto")
const { root, port, returned, control, chunkBytes, window, diskPrefix, partPattern } = workerData
const [TAKEN, SENT, STOP] = [${TAKEN}, ${SENT}, ${STOP}]
const part = new RegExp(partPattern)
class Stopped extends Error {}
const stopped = () => Atomics.load(control, STOP) !== 0
let chunk = new Uint8Array(chunkBytes)
let at = 0
let posted = 0
let received = 0
const probe = new Uint8Array(1)

const flush = () => {
  if (at === 0) return
  for (;;) {
    if (stopped()) throw new Stopped()
    const taken = Atomics.load(control, TAKEN)
    if (posted - taken < window) break
    Atomics.wait(control, TAKEN, taken, 1000)
  }
  parentPort.postMessage({ type: "chunk", bytes: chunk.buffer, length: at }, [chunk.buffer])
  posted++
  // a chunk the writer gave back, else a new one
  const back = receiveMessageOnPort(returned)
  chunk = back === undefined ? new Uint8Array(chunkBytes) : new Uint8Array(back.message)
  at = 0
}
const copy = (bytes) => {
  for (let from = 0; from < bytes.length;) {
    if (at === chunkBytes) flush()
    const n = Math.min(chunkBytes - at, bytes.length - from)
    chunk.set(bytes.subarray(from, from + n), at)
    at += n
    from += n
  }
}
const zeros = (n) => {
  while (n > 0) {
    if (at === chunkBytes) flush()
    const k = Math.min(chunkBytes - at, n)
    chunk.fill(0, at, at + k)
    at += k
    n -= k
  }
}
const nextBatch = () => {
  for (;;) {
    if (stopped()) throw new Stopped()
    const sent = Atomics.load(control, SENT)
    if (sent > received) {
      const got = receiveMessageOnPort(port)
      if (got !== undefined) {
        received++
        return got.message
      }
    }
    Atomics.wait(control, SENT, sent, 1000)
  }
}
class Problem extends Error {
  constructor(reason, description, code) {
    super(description)
    this.reason = reason
    this.code = code
  }
}
const inside = (p) => p === root || p.startsWith(root + path.sep)
const escapes = "a symlink leads outside the location"
const open = (key) => {
  const base = key.slice(key.lastIndexOf("/") + 1)
  if (base.startsWith(diskPrefix) || part.test(base)) {
    throw new Problem("PermissionDenied", "reserved name: writers use it for files still being written, which sweeps remove")
  }
  const joined = path.join(root, key)
  let real
  try {
    real = fs.realpathSync.native(joined)
  } catch (e) {
    if (e.code !== "ENOENT" && e.code !== "ENOTDIR") throw new Problem(undefined, e.message, e.code)
    let link = false
    try {
      link = fs.lstatSync(joined).isSymbolicLink()
    } catch {}
    // a dangling symlink is refused like an escaping one: where it leads cannot be checked
    if (link) throw new Problem("PermissionDenied", escapes)
    return undefined
  }
  if (!inside(real)) throw new Problem("PermissionDenied", escapes)
  let fd
  try {
    // non-blocking: a named pipe under a key must not hold the reader forever (a regular
    // file's reads block all the same); it is then found not to be a file
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  } catch (e) {
    if (e.code === "ENOENT") return undefined
    throw new Problem(undefined, e.message, e.code)
  }
  try {
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd)
      return undefined
    }
  } catch (e) {
    fs.closeSync(fd)
    throw new Problem(undefined, e.message, e.code)
  }
  return fd
}
// the member's bytes into the chunks, hashed where they landed: its fault, or undefined
const member = (index, m) => {
  const fd = open(m.key)
  if (fd === undefined) return { index, kind: "Missing", detail: "not found at the source" }
  try {
    const hash = createHash(m.hash)
    let got = 0
    while (got < m.size) {
      if (at === chunkBytes) flush()
      const n = fs.readSync(fd, chunk, at, Math.min(chunkBytes - at, m.size - got), null)
      if (n === 0) break
      hash.update(chunk.subarray(at, at + n))
      at += n
      got += n
    }
    if (got < m.size) return { index, kind: "Corrupt", detail: got + " bytes, recorded " + m.size, actualSize: got }
    if (fs.readSync(fd, probe, 0, 1, null) > 0) {
      return { index, kind: "Corrupt", detail: "more than the recorded " + m.size + " bytes", actualSize: got + 1 }
    }
    const hex = hash.digest("hex")
    if (hex !== m.hex) return { index, kind: "Corrupt", detail: "checksum " + m.algorithm + ":" + hex + ", recorded " + m.algorithm + ":" + m.hex, actualSize: got, hex }
    zeros((512 - (m.size % 512)) % 512)
    return undefined
  } catch (e) {
    // a system call's failure is the disk's; anything else (a stop, a bug) is not a storage error
    if (e instanceof Problem || typeof e?.code !== "string") throw e
    throw new Problem(undefined, e.message, e.code)
  } finally {
    fs.closeSync(fd)
  }
}
const run = () => {
  let index = 0
  for (;;) {
    const batch = nextBatch()
    if (batch.prefix !== undefined) copy(batch.prefix)
    // the next batch is made while this one is read
    if (!batch.last) parentPort.postMessage({ type: "need" })
    for (let i = 0; i < batch.members.length; i++, index++) {
      if (stopped()) throw new Stopped()
      const m = batch.members[i]
      copy(batch.headers.subarray(batch.ends[i - 1] ?? 0, batch.ends[i]))
      let fault
      try {
        fault = member(index, m)
      } catch (e) {
        if (!(e instanceof Problem)) throw e
        parentPort.postMessage({ type: "problem", index, reason: e.reason, description: e.message, code: e.code })
        return
      }
      if (fault !== undefined) {
        parentPort.postMessage({ type: "fault", ...fault })
        return
      }
    }
    if (batch.last) break
  }
  zeros(1024)
  flush()
  parentPort.postMessage({ type: "end" })
}
try {
  run()
} catch (e) {
  if (!(e instanceof Stopped)) throw e
}
`

/** What the worker tells the stream (and `crash`, what its thread's end does). */
export type Message =
  | { readonly type: "chunk"; readonly bytes: ArrayBuffer; readonly length: number }
  | { readonly type: "need" }
  | {
    readonly type: "fault"
    readonly index: number
    readonly kind: "Corrupt" | "Missing"
    readonly detail: string
    readonly actualSize?: number
    readonly hex?: string
  }
  | {
    readonly type: "problem"
    readonly index: number
    readonly reason?: StorageDriver.FolderProblem["reason"]
    readonly description: string
    readonly code?: string
  }
  | { readonly type: "end" }
  | { readonly type: "crash"; readonly error: unknown }
