/**
 * What the disk driver's byte-path tests share: a scratch folder per test file, bodies cut into
 * uneven pieces, and reading a stream or a failure's reason back as a plain value.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

/** One mebibyte. */
export const MiB = 1024 * 1024

/** A fresh folder under the system's temporary folder, removed when the calling test file ends. */
export const scratchRoot = (prefix: string): string => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
  return root
}

/** Every byte of a stream, as one buffer. */
export const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(s), (chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks)))

/** The `reason` a storage call failed with, or "success". */
export const reason = <A>(e: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.match(e, { onFailure: (err) => err.reason, onSuccess: () => "success" })

/** A body in uneven pieces (1 byte to 3 MiB), so batches never line up with the pieces. */
export const uneven = (bytes: Buffer): Stream.Stream<Uint8Array> => {
  const parts: Array<Uint8Array> = []
  let offset = 0
  for (let i = 0; offset < bytes.length; i++) {
    const size = [1, 4096, 3 * MiB, 777_777, 65_536][i % 5]
    parts.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return Stream.fromIterable(parts)
}

/** How many descriptors this process has open: a read that leaks one shows here. */
export const openFds = () => fs.readdirSync("/proc/self/fd").length
