/**
 * A real tape library driven by `mtx` (the changer: which cartridge is in which slot or drive)
 * and `mt` from mt-st (the drive: rewind, position, status), with the data read from and
 * written to the drive's non-rewinding device (`/dev/nstN`), built to the tools' documented
 * behaviour:
 *
 * - `mtx -f CHANGER status` lists "Data Transfer Element N:Full (Storage Element S Loaded):VolumeTag = L"
 *   and "Storage Element S:Full :VolumeTag=L"; `mtx -f CHANGER load S N` / `unload S N` move cartridges;
 * - `mt -f DEV asf N` rewinds and spaces forward over N file marks, leaving the head at the start
 *   of tape file N; `mt -f DEV setblk 0` selects variable-size blocks;
 * - writing to the device and closing it writes a file mark; reading returns the blocks of one
 *   tape file and then a zero-length read at the file mark.
 *
 * Several processes may drive one library: the tape driver gives each drive to one process at a
 * time (its drive locks), and `mount` asks the changer what is loaded rather than trusting what
 * this process loaded last, since another process may have swapped the cartridge since.
 *
 * Commands and device I/O can be swapped (`run`, `device`) to reach a library through a wrapper
 * (sudo, ssh) or a simulator; the tests drive this backend through the tape driver that way.
 */
import { StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import type { Readable, Writable } from "node:stream"
import { fromReadable } from "./internal/streams.js"
import type { Event, TapeLibrary, Volume } from "./TapeLibrary.js"

/** The library's devices and the tools to drive them. */
export interface Options {
  /** The changer's SCSI generic device, e.g. `/dev/sg3`. */
  readonly changer: string
  /** Non-rewinding drive devices in data-transfer-element order, e.g. `["/dev/nst0"]`. */
  readonly drives: ReadonlyArray<string>
  /** Only these cartridges are used (others may belong to other systems). Default: all. */
  readonly labels?: ReadonlyArray<string> | undefined
  /** Native capacity per cartridge. Default 12 TB (LTO-8). */
  readonly capacityBytes?: number | undefined
  /** Block size of device writes and reads. Default 256 KiB. */
  readonly blockSize?: number | undefined
  readonly mt?: string | undefined
  readonly mtx?: string | undefined
  /** Runs a command and returns its stdout. Default: `execFile`. */
  readonly run?: ((command: string, args: ReadonlyArray<string>) => Promise<string>) | undefined
  /** Opens the drive device. Default: the device file itself. */
  readonly device?: {
    readonly read: (device: string, blockSize: number) => Readable
    readonly write: (device: string) => Writable
  } | undefined
}

/** One element of `mtx status`. */
export interface MtxElement {
  readonly kind: "drive" | "slot"
  readonly index: number
  readonly label: string | undefined
  /** For a loaded drive: the slot its cartridge came from. */
  readonly sourceSlot?: number | undefined
}

/** Parses `mtx status` output into drives and storage slots. */
export const parseMtxStatus = (text: string): ReadonlyArray<MtxElement> => {
  const out: Array<MtxElement> = []
  for (const line of text.split("\n")) {
    const drive = /^\s*Data Transfer Element (\d+):(Full|Empty)(?: \(Storage Element (\d+) Loaded\))?(?::VolumeTag\s*=\s*(\S+))?/.exec(line)
    if (drive !== null) {
      out.push({
        kind: "drive",
        index: Number(drive[1]),
        label: drive[2] === "Full" ? drive[4] ?? "" : undefined,
        sourceSlot: drive[3] === undefined ? undefined : Number(drive[3])
      })
      continue
    }
    const slot = /^\s*Storage Element (\d+)(?: IMPORT\/EXPORT)?:(Full|Empty)(?:\s*:VolumeTag\s*=\s*(\S+))?/.exec(line)
    if (slot !== null) out.push({ kind: "slot", index: Number(slot[1]), label: slot[2] === "Full" ? slot[3] ?? "" : undefined })
  }
  return out
}

/** The position `mt status` reports. */
export interface MtStatus {
  readonly fileNumber: number
  readonly blockNumber: number
  readonly online: boolean
}

/** Parses `mt status` (mt-st) output. */
export const parseMtStatus = (text: string): MtStatus => {
  const pos = /File number=(-?\d+), block number=(-?\d+)/.exec(text)
  return {
    fileNumber: pos === null ? -1 : Number(pos[1]),
    blockNumber: pos === null ? -1 : Number(pos[2]),
    online: /\bONLINE\b/.test(text)
  }
}

const defaultRun = (command: string, args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile(command, [...args], { timeout: 30 * 60_000 }, (err, stdout, stderr) =>
      err === null
        ? resolve(stdout)
        // a missing program is a setup problem, not the library's: say so rather than "spawn ENOENT"
        : reject(new Error(
          err.code === "ENOENT"
            ? `${command} cannot be run: it is not installed or not on the PATH`
            : `${command} ${args.join(" ")}: ${stderr || err.message}`
        )))
  )

/** Builds the backend; nothing is touched until the driver mounts a volume. */
export const make = (options: Options): TapeLibrary => {
  const name = "mtx-tape"
  const mt = options.mt ?? "mt"
  const mtx = options.mtx ?? "mtx"
  const blockSize = options.blockSize ?? 256 * 1024
  const run = options.run ?? defaultRun
  const device = options.device ?? {
    read: (dev: string, size: number) => fs.createReadStream(dev, { highWaterMark: size }),
    write: (dev: string) => fs.createWriteStream(dev)
  }
  const events: Array<Event> = []
  const mounted: Array<string | undefined> = options.drives.map(() => undefined)
  const position: Array<number> = options.drives.map(() => 0)
  const fail = (method: string, reason: StorageError.StorageErrorReason, description: string, cause?: unknown) =>
    new StorageError.StorageError({ reason, driver: name, method, description, cause })
  const exec = (method: string, command: string, args: ReadonlyArray<string>) =>
    Effect.tryPromise({
      try: () => run(command, args),
      catch: (cause) => fail(method, "Unavailable", cause instanceof Error ? cause.message : String(cause), cause)
    })
  const status = (method: string) => Effect.map(exec(method, mtx, ["-f", options.changer, "status"]), parseMtxStatus)
  const dev = (method: string, drive: number) =>
    options.drives[drive] === undefined
      ? Effect.fail(fail(method, "Unavailable", `no drive ${drive}`))
      : Effect.succeed(options.drives[drive]!)

  const volumes = Effect.map(status("volumes"), (elements) =>
    elements
      .filter((e) => e.label !== undefined && e.label !== "")
      .map((e) => e.label!)
      .filter((l) => options.labels === undefined || options.labels.includes(l))
      .sort()
      .map((label): Volume => ({ label, capacityBytes: options.capacityBytes ?? 12e12 })))

  const mount = (drive: number, label: string) =>
    Effect.gen(function* () {
      const device = yield* dev("mount", drive)
      const elements = yield* status("mount")
      const here = elements.find((e) => e.kind === "drive" && e.index === drive)
      if (here?.label === label) {
        mounted[drive] = label
        return
      }
      const other = elements.find((e) => e.kind === "drive" && e.index !== drive && e.label === label)
      if (other !== undefined) {
        yield* exec("mount", mtx, ["-f", options.changer, "unload", String(other.sourceSlot), String(other.index)])
        events.push({ _tag: "Unmount", drive: other.index, volume: label })
        mounted[other.index] = undefined
      }
      if (here?.label !== undefined) {
        yield* exec("mount", mtx, ["-f", options.changer, "unload", String(here.sourceSlot), String(drive)])
        events.push({ _tag: "Unmount", drive, volume: here.label })
      }
      const slot = (other === undefined ? elements : yield* status("mount")).find((e) => e.kind === "slot" && e.label === label)
      if (slot === undefined) return yield* fail("mount", "NotFound", `no cartridge ${label} in the library`)
      yield* exec("mount", mtx, ["-f", options.changer, "load", String(slot.index), String(drive)])
      yield* exec("mount", mt, ["-f", device, "rewind"])
      yield* exec("mount", mt, ["-f", device, "setblk", "0"])
      mounted[drive] = label
      position[drive] = 0
      events.push({ _tag: "Mount", drive, volume: label })
    })

  const seek = (drive: number, fileNumber: number) =>
    Effect.gen(function* () {
      const device = yield* dev("seek", drive)
      yield* exec("seek", mt, ["-f", device, "asf", String(fileNumber)])
      const at = parseMtStatus(yield* exec("seek", mt, ["-f", device, "status"]))
      if (at.fileNumber !== fileNumber) {
        return yield* fail("seek", "Corrupt", `asked for file ${fileNumber}, drive reports ${at.fileNumber}`)
      }
      position[drive] = fileNumber
      events.push({ _tag: "Seek", drive, volume: mounted[drive] ?? "", fileNumber })
    })

  const append = <E>(drive: number, afterFile: number, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function* () {
      const device_ = yield* dev("append", drive)
      // writing at the start of file `afterFile` drops any partial file a failed write left
      yield* seek(drive, afterFile)
      let bytes = 0
      yield* Effect.acquireUseRelease(
        Effect.sync(() => device.write(device_)),
        (out) =>
          Effect.gen(function* () {
            const block = Buffer.allocUnsafe(blockSize)
            let filled = 0
            const flush = (n: number) => {
              const copy = Buffer.from(block.subarray(0, n))
              filled = 0
              return Effect.async<void, StorageError.StorageError>((resume) => {
                out.write(
                  copy,
                  (err?: Error | null) => resume(err ? Effect.fail(fail("append", "Unavailable", String(err), err)) : Effect.void)
                )
              })
            }
            yield* Stream.runForEach(body, (chunk) =>
              Effect.gen(function* () {
                let off = 0
                while (off < chunk.length) {
                  const n = Math.min(blockSize - filled, chunk.length - off)
                  block.set(chunk.subarray(off, off + n), filled)
                  filled += n
                  off += n
                  bytes += n
                  if (filled === blockSize) yield* flush(blockSize)
                }
              }))
            if (filled > 0) yield* flush(filled)
            // closing the device writes the file mark
            yield* Effect.async<void, StorageError.StorageError>((resume) => {
              out.end(() => resume(Effect.void))
              out.once("error", (err: Error) => resume(Effect.fail(fail("append", "Unavailable", String(err), err))))
            })
          }),
        (out) => Effect.sync(() => out.destroyed || out.destroy())
      )
      position[drive] = afterFile + 1
      events.push({ _tag: "Append", drive, volume: mounted[drive] ?? "", fileNumber: afterFile })
      return { fileNumber: afterFile, bytes }
    })

  const read = (drive: number) =>
    Stream.unwrap(Effect.gen(function* () {
      const device_ = yield* dev("read", drive)
      const fileNumber = position[drive]!
      events.push({ _tag: "Read", drive, volume: mounted[drive] ?? "", fileNumber })
      position[drive] = fileNumber + 1
      return fromReadable(
        Effect.sync(() => device.read(device_, blockSize)),
        (cause) => fail("read", "Unavailable", String(cause), cause)
      )
    }))

  return {
    name,
    drives: options.drives.length,
    volumes,
    mount,
    seek,
    append,
    read,
    events: Effect.sync(() => [...events])
  }
}
