/**
 * Byte arrays a stream's producer lends and wants back: the producer fills the same few buffers
 * again instead of allocating a fresh one per chunk. At gigabytes per second, fresh buffers are
 * what costs: V8 counts them as external memory, and every 64 MiB of it sets off a full
 * collection (measured packaging 1 GiB here: 1.4 s of collector threads' CPU with fresh 4 MiB
 * buffers, 0.2 s with lent ones).
 *
 * Giving back is the sink's act, never a stage's: only the writer at the end of the stream,
 * once it will never read the bytes again (it copied them, or its write of them has ended), may
 * call `giveBack`; a stage that passes bytes on must not, since whoever it passed them to may
 * still hold them. Nothing obliges a sink to: bytes never given back are collected as usual, so
 * a sink that does not know this module loses nothing. A producer must transfer or overwrite a
 * buffer only after it was given back.
 */

// one registry per process, whichever copy of this module a bundle carries (the CommonJS builds
// of `@ccat/core` and `@ccat/core/node` each inline their own)
const registry = Symbol.for("@ccat/core/LentBytes")
type Lenders = WeakMap<Uint8Array, (bytes: Uint8Array) => void>
const lenders = ((globalThis as Record<symbol, unknown>)[registry] ??= new WeakMap()) as Lenders

/** Marks `bytes` as lent: `giveBack(bytes)` will call `back` once. Returns `bytes`. */
export const lend = (bytes: Uint8Array, back: (bytes: Uint8Array) => void): Uint8Array => {
  lenders.set(bytes, back)
  return bytes
}

/** The sink is done with `bytes` for good: their lender may fill them again. Does nothing for bytes nobody lent. */
export const giveBack = (bytes: Uint8Array): void => {
  const back = lenders.get(bytes)
  if (back === undefined) return
  lenders.delete(bytes)
  back(bytes)
}

/** Whether `bytes` are lent and not yet given back. */
export const isLent = (bytes: Uint8Array): boolean => lenders.has(bytes)
