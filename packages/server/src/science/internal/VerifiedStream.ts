/**
 * Bytes checked against an expected size and checksum as they flow to a reader, without staging
 * them: each part is counted and hashed as it passes, and the last part is held back until the
 * size and checksum are known, so a mismatch fails the stream instead of completing it and a
 * caller never receives a complete wrong body.
 */
import { Checksum } from "@ccat/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"

/** What the bytes must come to, and the word failures use for where those figures come from. */
export interface Expected {
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  /** "recorded", "filed": how a failure names the expected figures ("3 bytes, filed 4"). */
  readonly source: string
}

/**
 * `body` counted and hashed as it passes, its last part released only once the size and
 * checksum match `expected`; any mismatch ends in `failed(detail)`, which also decides the error.
 */
export const verified = <E, F>(
  body: Stream.Stream<Uint8Array, E>,
  expected: Expected,
  failed: (detail: string) => Effect.Effect<never, F>
): Stream.Stream<Uint8Array, E | F> =>
  Stream.suspend(() => {
    const { algorithm } = Checksum.parse(expected.checksum)
    const hash = createHash(Checksum.nodeHashName[algorithm])
    let bytes = 0
    let held: Uint8Array | undefined
    return body.pipe(
      Stream.mapChunksEffect((chunk): Effect.Effect<Chunk.Chunk<Uint8Array>, F> => {
        const out: Array<Uint8Array> = []
        for (const part of chunk) {
          if (part.length === 0) continue
          bytes += part.length
          if (bytes > expected.sizeBytes) return failed(`more than the ${expected.source} ${expected.sizeBytes} bytes`)
          hash.update(part)
          if (held !== undefined) out.push(held)
          held = part
        }
        return Effect.succeed(Chunk.unsafeFromArray(out))
      }),
      Stream.concat(Stream.unwrap(Effect.suspend(() => {
        if (bytes !== expected.sizeBytes) return failed(`${bytes} bytes, ${expected.source} ${expected.sizeBytes}`)
        const actual = Checksum.make(algorithm, hash.digest("hex"))
        if (actual !== expected.checksum) return failed(`checksum ${actual}, ${expected.source} ${expected.checksum}`)
        return Effect.succeed(held === undefined ? Stream.empty : Stream.make(held))
      })))
    )
  })
