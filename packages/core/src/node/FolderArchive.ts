/**
 * An archive whose members are files in a folder on this machine, laid out by a worker thread:
 * it opens each file, reads its bytes straight into the archive's next chunk, hashes them where
 * they landed and checks them against the member's record, and hands each full chunk over whole
 * (moved, not copied). The calling thread only passes chunks on: no call per file, no promise per
 * read, no copy of a member's bytes.
 *
 * Packaging many small files through the storage port costs five thread-pool round trips per
 * file (realpath, open, fstat, read, close), a copy into the tar and a copy into the checksum
 * ring, on the thread that also writes the tar; the worker makes the same calls synchronously,
 * where blocking costs nothing else. The bytes are the same as `ArchiveWriter.archive`'s: the
 * tar headers are made here with `PackageLayout`, and sent to the worker a batch of members at a
 * time, so memory stays at a few chunks and one batch of headers whatever the archive's size.
 *
 * The worker follows the disk driver's rules for a key (`StorageDriver.LocalFolder`): a writer's
 * temporary name is refused; the key's real path must lie inside the folder's (a symlink may
 * point anywhere inside, never outside, and a dangling one is refused like an escaping one); a
 * key that is not a file is not found. A member that is gone, grew, shrank or hashes to something
 * else ends the stream with a `MemberFault` before any byte of the archive's end is handed over.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import { MessageChannel, Worker } from "node:worker_threads"
import * as Checksum from "../Checksum.js"
import * as LentBytes from "../LentBytes.js"
import * as PackageLayout from "../PackageLayout.js"
import * as PackageManifest from "../PackageManifest.js"
import type * as StorageDriver from "../StorageDriver.js"
import * as TemporaryNames from "../TemporaryNames.js"

/** Bytes per chunk the worker hands over. */
export const chunkBytes = 4 * 1024 * 1024

/** Chunks handed over and not yet taken downstream: the worker waits beyond this (16 MiB). */
const window = 4

/** Members whose headers go to the worker in one message. */
const batchMembers = 512

/** Why a member cannot go into the archive, as the worker found it. */
export interface Fault {
  readonly index: number
  readonly kind: "Corrupt" | "Missing"
  readonly detail: string
  readonly actualSize?: number | undefined
  readonly actualChecksum?: Checksum.Checksum | undefined
}

/** The members' files: where they are and how a failure to read one is reported. */
export interface Input<E, F> {
  readonly manifest: PackageManifest.Manifest
  /** Entry modification time, seconds since the epoch. */
  readonly mtime: number
  /** The folder's real path (`StorageDriver.LocalFolder.root`). */
  readonly root: string
  /** Each member's key in the folder, in archive order. */
  readonly keys: ReadonlyArray<string>
  /** The error for a problem met reading `key` other than a missing file (a refused key, a failing disk). */
  readonly failure: (key: string, problem: StorageDriver.FolderProblem) => E
  /** A member's fault (Corrupt or Missing) as the stream's error. */
  readonly fault: (fault: Fault) => F
}

// Control words shared with the worker: chunks taken downstream, batches sent, and stop.
const TAKEN = 0
const SENT = 1
const STOP = 2

/**
 * The worker. It blocks (`Atomics.wait`, a 1 s timeout so a stop is seen) for a batch of
 * members or for room among the chunks handed over; a stop is seen there and between members,
 * and ends it with its file closed.
 */
const workerSource = `
const { workerData, parentPort, receiveMessageOnPort } = require("node:worker_threads")
const fs = require("node:fs")
const path = require("node:path")
const { createHash } = require("node:crypto")
const { root, port, returned, control, chunkBytes, window, diskPrefix, partPattern } = workerData
const [TAKEN, SENT, STOP] = [0, 1, 2]
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
  if (process.env.CCAT_FOLDER_CPU) { const st = fs.readFileSync("/proc/thread-self/stat", "utf8").slice(fs.readFileSync("/proc/thread-self/stat", "utf8").lastIndexOf(")") + 2).split(" "); console.error("folder worker user", Number(st[11]) / 100, "sys", Number(st[12]) / 100) }
}
try {
  run()
} catch (e) {
  if (!(e instanceof Stopped)) throw e
}
`

type Message =
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

/**
 * The archive's bytes, the same as `ArchiveWriter.archive` writes for the manifest and `mtime`,
 * laid out by a worker thread of its own that the stream's scope stops.
 */
export const archive = <E, F>(input: Input<E, F>): Stream.Stream<Uint8Array, E | F> =>
  Stream.unwrapScoped(Effect.gen(function* () {
    const list = PackageManifest.members(input.manifest)
    const { keys, mtime, root } = input
    if (keys.length !== list.length) {
      return yield* Effect.dieMessage(`FolderArchive: ${keys.length} keys for ${list.length} members`)
    }
    const control = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT))
    const channel = new MessageChannel()
    // chunks the writer gave back (`LentBytes`), moved back to the worker to be filled again
    const returned = new MessageChannel()
    let open = true
    const messages = yield* Queue.unbounded<Message>()
    const { exited, worker } = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const worker = new Worker(workerSource, {
          eval: true,
          workerData: {
            root,
            port: channel.port2,
            returned: returned.port2,
            control,
            chunkBytes,
            window,
            diskPrefix: TemporaryNames.diskPrefix,
            partPattern: TemporaryNames.partPattern.source
          },
          transferList: [channel.port2, returned.port2]
        })
        const exited = new Promise<number>((resolve) => worker.once("exit", resolve))
        return { exited, worker }
      }),
      ({ exited, worker }) =>
        Effect.promise(async () => {
          open = false
          Atomics.store(control, STOP, 1)
          Atomics.notify(control, TAKEN)
          Atomics.notify(control, SENT)
          channel.port1.close()
          returned.port1.close()
          // a stopping worker closes the file it has open on its way out; one that has not ended
          // within the bound is stuck in a system call (a read of a hung disk), which no
          // termination interrupts: it is let go, unref'd, and ends with the call, its file
          // descriptor open until the process ends
          let timer: ReturnType<typeof setTimeout> | undefined
          const ended = await Promise.race([
            exited.then(() => true),
            new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5_000)))
          ])
          clearTimeout(timer)
          if (ended) return
          worker.unref()
          void worker.terminate()
        })
    )
    worker.on("message", (m: Message) => Queue.unsafeOffer(messages, m))
    worker.on("error", (error) => Queue.unsafeOffer(messages, { type: "crash", error }))
    // an exit with no last word (end, fault or problem) before it: the archive cannot end
    void exited.then((code) => Queue.unsafeOffer(messages, { type: "crash", error: new Error(`the folder reader exited (code ${code})`) }))

    const seen = new Set<string>()
    let next = 0
    const send = (prefix?: Uint8Array) => {
      const end = Math.min(list.length, next + batchMembers)
      const members: Array<{ key: string; size: number; hash: string; algorithm: string; hex: string }> = []
      const parts: Array<Uint8Array> = []
      const ends: Array<number> = []
      let length = 0
      for (; next < end; next++) {
        const m = list[next]
        const { algorithm, hex } = Checksum.parse(m.checksum)
        members.push({ key: keys[next], size: m.sizeBytes, hash: Checksum.nodeHashName[algorithm], algorithm, hex })
        for (const h of PackageLayout.memberHeaders(m, seen, mtime)) {
          parts.push(h)
          length += h.length
        }
        ends.push(length)
      }
      const headers = new Uint8Array(length)
      let at = 0
      for (const p of parts) {
        headers.set(p, at)
        at += p.length
      }
      channel.port1.postMessage({ prefix, members, headers, ends, last: next === list.length }, [headers.buffer])
      Atomics.add(control, SENT, 1)
      Atomics.notify(control, SENT)
    }
    const entry = PackageLayout.manifestEntry(input.manifest, mtime)
    const prefix = new Uint8Array(entry.reduce((n, p) => n + p.length, 0))
    entry.reduce((at, p) => (prefix.set(p, at), at + p.length), 0)
    send(prefix)

    const giveBack = (bytes: Uint8Array) => {
      const buffer = bytes.buffer as ArrayBuffer
      if (open && buffer.byteLength === chunkBytes) returned.port1.postMessage(buffer, [buffer])
    }

    type Pull = Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | F>>
    const pull: Pull = Effect.flatMap(Queue.take(messages), (m): Pull => {
      switch (m.type) {
        case "chunk":
          Atomics.add(control, TAKEN, 1)
          Atomics.notify(control, TAKEN)
          return Effect.succeed(Chunk.of(LentBytes.lend(new Uint8Array(m.bytes, 0, m.length), giveBack)))
        case "need":
          send()
          return pull
        case "end":
          return Effect.fail(Option.none())
        case "fault": {
          const record = list[m.index]
          const actualChecksum = m.hex === undefined ? undefined : Checksum.make(Checksum.parse(record.checksum).algorithm, m.hex)
          return Effect.fail(
            Option.some(input.fault({ index: m.index, kind: m.kind, detail: m.detail, actualSize: m.actualSize, actualChecksum }))
          )
        }
        case "problem":
          return Effect.fail(Option.some(input.failure(keys[m.index], { reason: m.reason, code: m.code, description: m.description })))
        case "crash":
          return Effect.die(m.error)
      }
    })
    return Stream.repeatEffectChunkOption(pull)
  }))
