/**
 * A virtual tape library on a local folder, for tests and the demo: each volume is one file
 * (`<label>.vol`) holding its tape files back to back, with the file marks (offset and size of
 * each tape file) beside it (`<label>.marks.json`). Mounting and seeking cost configurable
 * time, drives are limited, and volumes have capacities, so the tape driver's scheduling is
 * exercised as it would be on a real library.
 *
 * Which volume each drive holds is kept per process: several processes sharing the folder see
 * the same volumes and file marks, and the tape driver's drive locks keep them off each other's
 * drives, but each one simulates its own mounts.
 */
import { StorageError } from "@ccat/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { errnoError, fromReadable } from "./internal/streams.js"
import type { Event, TapeLibrary, Volume } from "./TapeLibrary.js"

/** The library's shape and its (simulated) mechanics. */
export interface Options {
  readonly root: string
  /** The cartridges: a number of volumes labelled CCAT000..., or explicit labels and capacities. */
  readonly volumes: number | ReadonlyArray<Volume>
  /** Capacity of each numbered volume. Default 1 GiB. */
  readonly capacityBytes?: number | undefined
  /** Drives. Default 1. */
  readonly drives?: number | undefined
  /** Time to load a cartridge. Default 0. */
  readonly mountLatency?: Duration.DurationInput | undefined
  /** Time to move over one tape file while positioning. Default 0. */
  readonly seekLatency?: Duration.DurationInput | undefined
}

interface Mark {
  readonly offset: number
  readonly size: number
}

const MiB = 1024 * 1024

/** Writes a file by temporary file, fsync, rename and fsync of the folder. */
const replaceFile = async (file: string, text: string) => {
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`
  const handle = await fs.open(tmp, "wx")
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await fs.rename(tmp, file)
  const dir = await fs.open(path.dirname(file), "r")
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** Builds the library, creating its folder. */
export const make: (options: Options) => Effect.Effect<TapeLibrary, StorageError.StorageError> = Effect.fn(
  "VirtualTapeLibrary.make"
)(function* (options: Options) {
  const name = "virtual-tape"
  const io = <A>(method: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => errnoError(name, method, undefined, cause) })
  const fail = (method: string, reason: StorageError.StorageErrorReason, description: string) =>
    new StorageError.StorageError({ reason, driver: name, method, description })
  yield* io("open", () => fs.mkdir(options.root, { recursive: true }))
  const volumes: ReadonlyArray<Volume> = typeof options.volumes === "number"
    ? Array.from({ length: options.volumes }, (_, i) => ({
      label: `CCAT${String(i).padStart(3, "0")}`,
      capacityBytes: options.capacityBytes ?? 1024 * MiB
    }))
    : options.volumes
  const drives = options.drives ?? 1
  const mountLatency = Duration.decode(options.mountLatency ?? 0)
  const seekLatency = Duration.decode(options.seekLatency ?? 0)
  const mounted: Array<string | undefined> = Array.from({ length: drives }, () => undefined)
  const position: Array<number> = Array.from({ length: drives }, () => 0)
  const events: Array<Event> = []
  const volumeFile = (label: string) => path.join(options.root, `${label}.vol`)
  const marksFile = (label: string) => path.join(options.root, `${label}.marks.json`)
  const readMarks = (label: string) =>
    io(
      "marks",
      () =>
        fs.readFile(marksFile(label), "utf8").then(
          (s) => JSON.parse(s) as Array<Mark>,
          (e) => e?.code === "ENOENT" ? [] : Promise.reject(e)
        )
    )
  const volumeOf = (label: string) => volumes.find((v) => v.label === label)
  const loaded = (method: string, drive: number) =>
    mounted[drive] === undefined ? Effect.fail(fail(method, "Unavailable", `drive ${drive} is empty`)) : Effect.succeed(mounted[drive]!)

  const mount = (drive: number, label: string) =>
    Effect.gen(function* () {
      if (drive < 0 || drive >= drives) return yield* fail("mount", "Unavailable", `no drive ${drive}`)
      if (volumeOf(label) === undefined) return yield* fail("mount", "NotFound", `no volume ${label}`)
      if (mounted[drive] === label) return
      const elsewhere = mounted.indexOf(label)
      if (elsewhere >= 0) {
        events.push({ _tag: "Unmount", drive: elsewhere, volume: label })
        mounted[elsewhere] = undefined
      }
      if (mounted[drive] !== undefined) events.push({ _tag: "Unmount", drive, volume: mounted[drive]! })
      yield* Effect.sleep(mountLatency)
      mounted[drive] = label
      position[drive] = 0
      events.push({ _tag: "Mount", drive, volume: label })
    })

  const seek = (drive: number, fileNumber: number) =>
    Effect.gen(function* () {
      const label = yield* loaded("seek", drive)
      const distance = Math.abs(fileNumber - position[drive]!)
      if (distance > 0) yield* Effect.sleep(Duration.times(seekLatency, distance))
      position[drive] = fileNumber
      events.push({ _tag: "Seek", drive, volume: label, fileNumber })
    })

  const append = <E>(drive: number, afterFile: number, body: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function* () {
      const label = yield* loaded("append", drive)
      const capacity = volumeOf(label)!.capacityBytes
      const marks = (yield* readMarks(label)).slice(0, afterFile)
      if (marks.length < afterFile) return yield* fail("append", "Corrupt", `${label} has ${marks.length} files, expected ${afterFile}`)
      const last = marks[marks.length - 1]
      const offset = last === undefined ? 0 : last.offset + last.size
      let size = 0
      yield* Effect.acquireUseRelease(
        io("append", () => fs.open(volumeFile(label), "a+").then((h) => h.close()).then(() => fs.open(volumeFile(label), "r+"))),
        (handle) =>
          Stream.runForEachChunk(body, (chunk) =>
            Effect.gen(function* () {
              for (const part of chunk) {
                if (offset + size + part.length > capacity) {
                  return yield* fail("append", "Unavailable", `end of tape on ${label}`)
                }
                yield* io("append", () => handle.write(part, 0, part.length, offset + size))
                size += part.length
              }
            })).pipe(Effect.zipRight(io("append", () => handle.sync()))),
        (handle) => Effect.promise(() => handle.close().catch(() => undefined))
      )
      // the file mark: written only after the data is on the volume, and replaced whole, so a
      // process killed here leaves either the old marks or the new ones
      yield* io("append", () => replaceFile(marksFile(label), JSON.stringify([...marks, { offset, size }])))
      position[drive] = afterFile + 1
      events.push({ _tag: "Append", drive, volume: label, fileNumber: afterFile })
      return { fileNumber: afterFile, bytes: size }
    })

  const read = (drive: number) =>
    Stream.unwrap(Effect.gen(function* () {
      const label = yield* loaded("read", drive)
      const fileNumber = position[drive]!
      const mark = (yield* readMarks(label))[fileNumber]
      if (mark === undefined) return yield* fail("read", "NotFound", `${label} has no file ${fileNumber}`)
      position[drive] = fileNumber + 1
      events.push({ _tag: "Read", drive, volume: label, fileNumber })
      if (mark.size === 0) return Stream.empty
      return fromReadable(
        io("read", () => fs.open(volumeFile(label), "r")).pipe(
          Effect.map((h) => h.createReadStream({ start: mark.offset, end: mark.offset + mark.size - 1, highWaterMark: MiB }))
        ),
        (cause) => errnoError(name, "read", undefined, cause)
      )
    }))

  const library: TapeLibrary = {
    name,
    drives,
    volumes: Effect.succeed(volumes),
    mount,
    seek,
    append,
    read,
    events: Effect.sync(() => [...events])
  }
  return library
})
