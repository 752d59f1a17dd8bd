/** Byte arrays put together. */

/**
 * The parts in one new array of their own: never a slice of a shared pool, as `Buffer.concat` may
 * hand out, so the result can be moved to another thread whole or kept without pinning the pool.
 */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array<ArrayBuffer> => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
