/**
 * How an upload's body is cut into S3 parts: fixed-size buffers filled as the bytes flow, each
 * part knowing whether it is the last, so a body of one part skips the multipart protocol and
 * memory stays at a few parts whatever the object's size.
 */
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"

/** One part of an upload: its number (from 1), its bytes, and whether it is the last. */
export interface Part {
  readonly number: number
  readonly bytes: Buffer
  readonly last: boolean
}

/**
 * Cuts a byte stream into parts of exactly `partSize` (the last may be shorter), knowing for
 * each part whether it is the last, so a one-part body can skip the multipart protocol.
 */
export const partsOf = <E>(body: Stream.Stream<Uint8Array, E>, partSize: number): Stream.Stream<Part, E> =>
  Stream.suspend(() => {
    let current: Buffer | undefined
    let filled = 0
    let pending: Buffer | undefined
    let index = 0
    return body.pipe(
      Stream.mapChunks((chunk) => {
        const out: Array<Part> = []
        for (const u8 of chunk) {
          let off = 0
          while (off < u8.length) {
            if (pending !== undefined) {
              out.push({ number: ++index, bytes: pending, last: false })
              pending = undefined
            }
            if (current === undefined) {
              current = Buffer.allocUnsafe(partSize)
              filled = 0
            }
            const n = Math.min(partSize - filled, u8.length - off)
            current.set(u8.subarray(off, off + n), filled)
            filled += n
            off += n
            if (filled === partSize) {
              pending = current
              current = undefined
            }
          }
        }
        return Chunk.unsafeFromArray(out)
      }),
      Stream.concat(Stream.suspend(() => {
        const out: Array<Part> = []
        if (current !== undefined && filled > 0) {
          if (pending !== undefined) out.push({ number: ++index, bytes: pending, last: false })
          out.push({ number: ++index, bytes: current.subarray(0, filled), last: true })
        } else if (pending !== undefined) {
          out.push({ number: ++index, bytes: pending, last: true })
        } else if (index === 0) {
          out.push({ number: 1, bytes: Buffer.alloc(0), last: true })
        }
        return Stream.fromIterable(out)
      }))
    )
  })
