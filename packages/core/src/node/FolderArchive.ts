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
import { concat } from "../internal/Bytes.js"
import * as LentBytes from "../LentBytes.js"
import * as PackageLayout from "../PackageLayout.js"
import * as PackageManifest from "../PackageManifest.js"
import type * as StorageDriver from "../StorageDriver.js"
import * as TemporaryNames from "../TemporaryNames.js"
import * as FolderReader from "./internal/FolderReader.js"

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
    const control = new Int32Array(new SharedArrayBuffer(FolderReader.controlWords * Int32Array.BYTES_PER_ELEMENT))
    const channel = new MessageChannel()
    // chunks the writer gave back (`LentBytes`), moved back to the worker to be filled again
    const returned = new MessageChannel()
    let open = true
    const messages = yield* Queue.unbounded<FolderReader.Message>()
    const { exited, worker } = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const worker = new Worker(FolderReader.source, {
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
          Atomics.store(control, FolderReader.STOP, 1)
          Atomics.notify(control, FolderReader.TAKEN)
          Atomics.notify(control, FolderReader.SENT)
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
    worker.on("message", (m: FolderReader.Message) => Queue.unsafeOffer(messages, m))
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
      const headers = concat(parts)
      channel.port1.postMessage({ prefix, members, headers, ends, last: next === list.length }, [headers.buffer])
      Atomics.add(control, FolderReader.SENT, 1)
      Atomics.notify(control, FolderReader.SENT)
    }
    send(concat(PackageLayout.manifestEntry(input.manifest, mtime)))

    const giveBack = (bytes: Uint8Array) => {
      const buffer = bytes.buffer as ArrayBuffer
      if (open && buffer.byteLength === chunkBytes) returned.port1.postMessage(buffer, [buffer])
    }

    type Pull = Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | F>>
    const pull: Pull = Effect.flatMap(Queue.take(messages), (m): Pull => {
      switch (m.type) {
        case "chunk":
          Atomics.add(control, FolderReader.TAKEN, 1)
          Atomics.notify(control, FolderReader.TAKEN)
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
