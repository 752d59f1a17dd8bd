/**
 * Incremental hashing for the storage port. Core must not import Node modules outside its
 * platform layer (DESIGN §2), yet the lifted driver hashes every byte it stores. The default
 * hasher therefore asks the runtime for its crypto module at run time
 * (`process.getBuiltinModule`, Node ≥ 20.16, Bun, Deno) instead of importing it; other runtimes
 * pass their own.
 */
import * as Checksum from "./Checksum.js"

/** A running hash: feed it bytes, then read the hex digest once. */
export interface Hasher {
  /** Feeds bytes; done with them when it returns (the caller may reuse the buffer). */
  readonly update: (chunk: Uint8Array) => void
  readonly digest: () => string
  /**
   * Present on hashers that hash off the calling thread (a worker fed through a bounded buffer),
   * so that hashing overlaps the caller's writes instead of taking turns with them. Callers may
   * ask it before the next `update` (`final` false: is there room for more bytes?) and should
   * before `digest` (`final` true: is everything hashed?), and wait for the promise it returns;
   * undefined means go ahead at once. A caller that skips it stays correct: `update` and
   * `digest` then block the thread until the worker has caught up. The lifted service's `put`
   * asks only before `digest` (an effect per chunk cost more in garbage collection than a rare
   * short block in `update`); `checksum` and `verify` ask before each update too.
   */
  readonly ready?: ((final: boolean) => Promise<void> | undefined) | undefined
}

/** Makes a fresh hasher for an algorithm. */
export type HasherFactory = (algorithm: Checksum.Algorithm) => Hasher

interface NodeCryptoLike {
  readonly createHash: (name: string) => { update(data: Uint8Array): unknown; digest(encoding: "hex"): string }
}

const builtinCrypto = (): NodeCryptoLike | undefined => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
  const mod = proc?.getBuiltinModule?.("node:crypto") as NodeCryptoLike | undefined
  return mod !== undefined && typeof mod.createHash === "function" ? mod : undefined
}

/**
 * The runtime's own crypto (native SHA-256 at about 1.9 GB/s per core here), or undefined where
 * the runtime has none; then checksum-based operations need an explicit factory.
 */
export const runtimeHasher: HasherFactory | undefined = (() => {
  const crypto = builtinCrypto()
  if (crypto === undefined) return undefined
  return (algorithm: Checksum.Algorithm): Hasher => {
    const hash = crypto.createHash(Checksum.nodeHashName[algorithm])
    return {
      update: (chunk) => {
        hash.update(chunk)
      },
      digest: () => hash.digest("hex")
    }
  }
})()
