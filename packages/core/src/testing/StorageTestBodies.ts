/**
 * Test bodies for storage: large reproducible streams generated as they flow, and their digests,
 * computed without holding the bytes. Kept apart from the suite so benchmarks and scripts can use
 * them without loading vitest.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Checksum from "../Checksum.js"
import { concat } from "../internal/Bytes.js"
import { runtimeHasher } from "../StorageHasher.js"

const MiB = 1024 * 1024
const hasher = runtimeHasher!

/** A random-looking, reproducible body of `size` bytes in 1 MiB chunks, generated as it streams. */
export const bodyOf = (size: number, seed = 1): Stream.Stream<Uint8Array> => {
  const block = new Uint8Array(MiB)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < block.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    block[i] = x & 0xff
  }
  return Stream.unfoldChunk(0, (offset): Option.Option<readonly [Chunk.Chunk<Uint8Array>, number]> => {
    if (offset >= size) return Option.none()
    const n = Math.min(MiB, size - offset)
    const chunk = new Uint8Array(n)
    chunk.set(block.subarray(0, n))
    // stamp the offset so a duplicated or reordered chunk changes the checksum
    const view = new DataView(chunk.buffer)
    if (n >= 8) view.setFloat64(0, offset + seed)
    return Option.some([Chunk.of<Uint8Array>(chunk), offset + n] as const)
  })
}

/** The sha256 and size of everything a stream emits, without holding it. */
export const digestOf = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.suspend(() => {
    const h = hasher("sha256")
    let size = 0
    return Stream.runForEachChunk(stream, (chunk) =>
      Effect.sync(() =>
        Chunk.forEach(chunk, (c) => {
          h.update(c)
          size += c.length
        })
      )).pipe(Effect.map(() => ({ checksum: Checksum.make("sha256", h.digest()), size })))
  })

/** Collects a small stream into one buffer. */
export const bytesOf = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Stream.runCollect(stream).pipe(Effect.map((chunks) => concat(Chunk.toReadonlyArray(chunks))))
