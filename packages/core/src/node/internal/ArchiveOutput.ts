/**
 * An archive's bytes gathered for the destination. Small pieces (headers, padding, small files)
 * are copied into 1 MiB buffers, so the destination writes and hashes large blocks; a large
 * piece passes through without a copy, after what was gathered before it. Plain code: with
 * thousands of small members, an effect or a stream step per piece is what costs.
 */

/** Pieces at least this large pass through as they are. */
const passBytes = 256 * 1024

/** Size of the buffers small pieces are gathered into. */
export const bufferBytes = 1024 * 1024

/** The gathering of one archive's bytes, in order. */
export class ArchiveOutput {
  private buffer: Buffer | undefined
  private used = 0
  private ready: Array<Uint8Array> = []

  /** Whether a full buffer or a passed piece waits to be taken. */
  get hasReady(): boolean {
    return this.ready.length > 0
  }

  /** Copies `bytes` in. */
  copy(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const buffer = this.buffer ??= Buffer.allocUnsafeSlow(bufferBytes)
      const n = Math.min(bufferBytes - this.used, bytes.length - at)
      buffer.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), this.used)
      this.used += n
      at += n
      if (this.used === bufferBytes) this.flush()
    }
  }

  /** Appends `length` zero bytes (padding, the end-of-archive blocks). */
  zeros(length: number): void {
    for (let left = length; left > 0;) {
      const buffer = this.buffer ??= Buffer.allocUnsafeSlow(bufferBytes)
      const n = Math.min(bufferBytes - this.used, left)
      buffer.fill(0, this.used, this.used + n)
      this.used += n
      left -= n
      if (this.used === bufferBytes) this.flush()
    }
  }

  /** A piece the caller will not touch again: large ones pass through, small ones are copied. */
  pass(part: Uint8Array): void {
    if (part.length < passBytes) return this.copy(part)
    this.flush()
    this.ready.push(part)
  }

  /** Makes what is gathered ready, even if its buffer is not full. */
  flush(): void {
    if (this.buffer !== undefined && this.used > 0) this.ready.push(this.buffer.subarray(0, this.used))
    this.buffer = undefined
    this.used = 0
  }

  /** The pieces ready, in order; they belong to the caller from now on. */
  take(): Array<Uint8Array> {
    const out = this.ready
    this.ready = []
    return out
  }
}
