/**
 * Reads a tar stream entry by entry, pulling from the source only as fast as each member's
 * consumer takes its bytes: a member's body is itself a Stream (handed to a destination's `put`,
 * or to a hash), so backpressure runs from the consumer back to the archive's source, and memory
 * stays at a few chunks whatever the archive's size. Pure Effect: no Node module is needed.
 */
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TarFormat from "./TarFormat.js"

/** The bytes are not a tar archive we can read (truncated, bad header, oversize metadata). */
export class MalformedArchive extends Data.TaggedError("MalformedArchive")<{ readonly detail: string }> {}

/** One entry, with pax and GNU long-name records applied. */
export interface Entry {
  readonly name: string
  readonly type: TarFormat.EntryType | "other"
  readonly size: number
}

/** Entry by entry access to an archive; call `next` only after the previous body was consumed. */
export interface ArchiveReader<E> {
  /** The next entry, or none at the end-of-archive marker or the end of the bytes. */
  readonly next: Effect.Effect<Option.Option<Entry>, E | MalformedArchive>
  /** The current entry's bytes, exactly `size` of them (read it at most once). */
  readonly body: () => Stream.Stream<Uint8Array, E | MalformedArchive>
  /** The current entry's bytes, gathered (for small metadata entries only). */
  readonly readBody: Effect.Effect<Uint8Array, E | MalformedArchive>
  /** Reads what is left of the archive (trailing blocks), so every byte passes the caller's hash. */
  readonly drain: Effect.Effect<void, E>
}

/** The largest pax or GNU long-name record we accept: names are at most a few KiB. */
const maxMetadataBytes = 1024 * 1024

/** Opens a reader on a tar byte stream; the stream is released with the scope. */
export const make = <E>(stream: Stream.Stream<Uint8Array, E>): Effect.Effect<ArchiveReader<E>, never, Scope.Scope> =>
  Effect.map(Stream.toPull(stream), (pull) => {
    const pending: Array<Uint8Array> = []
    let eof = false
    // Bytes of the current entry (body and padding) not yet read.
    let bodyLeft = 0
    let padLeft = 0

    const fill: Effect.Effect<boolean, E> = Effect.suspend(() =>
      pending.length > 0 ? Effect.succeed(true) : eof ? Effect.succeed(false) : pull.pipe(
        Effect.map((chunk) => {
          Chunk.forEach(chunk, (part) => {
            if (part.length > 0) pending.push(part)
          })
          return true
        }),
        Effect.catchAll((e) => {
          if (Option.isSome(e)) return Effect.fail(e.value)
          eof = true
          return Effect.succeed(false)
        }),
        Effect.flatMap((more) => more ? fill : Effect.succeed(false))
      )
    )

    /** Up to `max` bytes already pulled, without copying. */
    const take = (max: number): Uint8Array => {
      const head = pending[0]
      if (head.length <= max) {
        pending.shift()
        return head
      }
      pending[0] = head.subarray(max)
      return head.subarray(0, max)
    }

    const truncated = (what: string) => new MalformedArchive({ detail: `archive ends inside ${what}` })

    const readExact = (n: number, what: string): Effect.Effect<Uint8Array | undefined, E | MalformedArchive> =>
      Effect.gen(function* () {
        const out = new Uint8Array(n)
        let got = 0
        while (got < n) {
          if (!(yield* fill)) {
            if (got === 0) return undefined
            return yield* truncated(what)
          }
          const part = take(n - got)
          out.set(part, got)
          got += part.length
        }
        return out
      })

    const skip = (n: number, what: string): Effect.Effect<void, E | MalformedArchive> =>
      Effect.gen(function* () {
        let left = n
        while (left > 0) {
          if (!(yield* fill)) return yield* truncated(what)
          left -= take(left).length
        }
      })

    const finishEntry = Effect.suspend(() => {
      const n = bodyLeft + padLeft
      bodyLeft = 0
      padLeft = 0
      return skip(n, "an entry")
    })

    const block = (what: string) => readExact(TarFormat.blockSize, what)

    const next: Effect.Effect<Option.Option<Entry>, E | MalformedArchive> = Effect.gen(function* () {
      yield* finishEntry
      let overrides: Record<string, string> = {}
      while (true) {
        const raw = yield* block("a header")
        if (raw === undefined || TarFormat.isZeroBlock(raw)) return Option.none()
        const header = TarFormat.decodeHeader(raw)
        if (typeof header === "string") return yield* new MalformedArchive({ detail: header })
        const padded = header.size + TarFormat.padding(header.size).length
        if (header.typeflag === "x" || header.typeflag === "L" || header.typeflag === "g") {
          if (header.size > maxMetadataBytes) return yield* new MalformedArchive({ detail: `${header.size}-byte metadata record` })
          const data = yield* readExact(padded, "a metadata record")
          if (data === undefined) return yield* truncated("a metadata record")
          const body = data.subarray(0, header.size)
          if (header.typeflag === "x") overrides = { ...overrides, ...TarFormat.decodePax(body) }
          if (header.typeflag === "L") overrides = { ...overrides, path: new TextDecoder().decode(body).replace(/\0+$/, "") }
          continue
        }
        const size = overrides.size !== undefined ? Number(overrides.size) : header.size
        if (!Number.isSafeInteger(size) || size < 0) return yield* new MalformedArchive({ detail: `invalid size ${overrides.size}` })
        bodyLeft = size
        padLeft = TarFormat.padding(size).length
        // `tar -C DIR .` writes names as `./a/b`; the manifest's are `a/b`.
        const name = (overrides.path ?? header.name).replace(/^(\.\/)+/, "").replace(/\/+$/, "")
        return Option.some({ name, type: TarFormat.entryType(header.typeflag), size })
      }
    })

    const body = () =>
      Stream.repeatEffectChunkOption(Effect.suspend(() => {
        if (bodyLeft === 0) return Effect.fail(Option.none())
        return fill.pipe(
          Effect.mapError(Option.some),
          Effect.flatMap((more): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | MalformedArchive>> => {
            if (!more) return Effect.fail(Option.some(truncated("a member's bytes")))
            const parts: Array<Uint8Array> = []
            while (bodyLeft > 0 && pending.length > 0) {
              const part = take(bodyLeft)
              bodyLeft -= part.length
              parts.push(part)
            }
            return Effect.succeed(Chunk.unsafeFromArray(parts))
          })
        )
      }))

    const readBody = Effect.suspend(() => {
      const n = bodyLeft
      return readExact(n, "a member's bytes").pipe(Effect.map((b) => {
        bodyLeft = 0
        return b ?? new Uint8Array(0)
      }))
    })

    const drain: Effect.Effect<void, E> = Effect.suspend(() => {
      pending.length = 0
      return fill.pipe(Effect.flatMap((more) => more ? drain : Effect.void))
    })

    return { next, body, readBody, drain }
  })
