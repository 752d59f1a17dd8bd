/**
 * Streaming checksums on Node: every byte that moves is hashed in the same pass that moves it
 * (DESIGN §9), and files are hashed in bounded memory however large they are.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { createHash, type Hash } from "node:crypto"
import { createReadStream } from "node:fs"
import { Transform, type TransformCallback } from "node:stream"
import * as Checksum from "../Checksum.js"

/** Failure to read a file while hashing it. */
export class HashingError extends Data.TaggedError("HashingError")<{ readonly path: string; readonly cause: unknown }> {
  override get message(): string {
    return `could not hash ${this.path}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** A new hash object for a checksum algorithm. */
export const createHasher = (algorithm: Checksum.Algorithm): Hash => createHash(Checksum.nodeHashName[algorithm])

/**
 * A pass-through stream that hashes and counts what flows through it; read `checksum()` and
 * `bytes` after the stream ended.
 */
export class HashingStream extends Transform {
  private readonly hash: Hash
  private digest: Checksum.Checksum | undefined
  /** Bytes seen so far. */
  bytes = 0
  constructor(readonly algorithm: Checksum.Algorithm = Checksum.defaultAlgorithm) {
    super()
    this.hash = createHasher(algorithm)
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk)
    this.bytes += chunk.length
    cb(null, chunk)
  }
  /** The checksum of everything that passed; finalises the hash on first call. */
  checksum(): Checksum.Checksum {
    if (this.digest === undefined) this.digest = Checksum.make(this.algorithm, this.hash.digest("hex"))
    return this.digest
  }
}

/** Hashes a file in streaming fashion, returning its checksum and size in bytes. */
export const hashFile = (
  path: string,
  algorithm: Checksum.Algorithm = Checksum.defaultAlgorithm
): Effect.Effect<{ readonly checksum: Checksum.Checksum; readonly size: number }, HashingError> =>
  Effect.async<{ readonly checksum: Checksum.Checksum; readonly size: number }, HashingError>((resume, signal) => {
    const hash = createHasher(algorithm)
    let size = 0
    const stream = createReadStream(path, { highWaterMark: 1024 * 1024, signal })
    stream.on("data", (chunk) => {
      hash.update(chunk as Buffer)
      size += (chunk as Buffer).length
    })
    stream.on("error", (cause) => resume(Effect.fail(new HashingError({ path, cause }))))
    stream.on("end", () => resume(Effect.succeed({ checksum: Checksum.make(algorithm, hash.digest("hex")), size })))
  }).pipe(Effect.withSpan("Hashing.hashFile", { attributes: { path } }))
