/**
 * The storage benchmark's file and process helpers: commands run without a shell, source files
 * made from the test kit's bodies, a file's pages warmed into or dropped from the page cache, and
 * the untimed first puts that warm a driver up.
 */
import type { StorageDriver } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { bodyOf } from "../../packages/core/src/testing/StorageTestBodies.js"
import { MiB } from "./settings.js"

/** Runs a command with its arguments (no shell), failing on a non-zero exit. */
export const sh = (cmd: string, args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const p = spawn(cmd, [...args], { stdio: ["ignore", "ignore", "inherit"] })
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))))
  })

/** Reads a Node stream to its end, dropping the bytes. */
export const drain = (readable: Readable) =>
  new Promise<void>((resolve, reject) => {
    readable.on("data", () => undefined)
    readable.on("end", resolve)
    readable.on("error", reject)
  })

/** A file as a stream of 1 MiB chunks. */
export const fileStream = (file: string): Stream.Stream<Uint8Array, Error> =>
  Stream.fromAsyncIterable(fs.createReadStream(file, { highWaterMark: MiB }) as AsyncIterable<Uint8Array>, (e) => e as Error)

/** Runs an Effect as a Promise. */
export const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

/** Writes `bytes` bytes of the test kit's body to `dir/name`, returning the path. */
export const makeSource = async (dir: string, bytes: number, name: string) => {
  const file = path.join(dir, name)
  const out = fs.createWriteStream(file)
  await run(Stream.runForEach(bodyOf(bytes, 42), (chunk) =>
    Effect.async<void>((resume) => {
      out.write(chunk, () => resume(Effect.void))
    })))
  await new Promise<void>((r) => out.end(r))
  return file
}

/**
 * Reads a file to nowhere, so its pages are in the page cache. Needed before every phase, not
 * once: this machine's kernel runs DAMON proactive reclaim (a `pageout` scheme for pages idle
 * for 60 s), so a file warmed at the start is partly on the device again minutes later, and a
 * phase would measure the device instead of the copy.
 */
export const warm = (file: string) => sh("cat", [file])

/** Drops a file's pages from the page cache (posix_fadvise DONTNEED through GNU dd; no root needed). */
export const dropCache = (file: string) => sh("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"])

/**
 * Four puts of the small source under a scratch key, before a timed put in its process: they
 * start the hashing worker (and a disk driver's direct-I/O ring) and let V8 optimise the path.
 */
export const firstPuts = (d: StorageDriver.Service, smallSource: string) => async () => {
  for (let i = 0; i < 4; i++) await run(d.put("warm-up.bin", fileStream(smallSource), { overwrite: true }))
}
