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
  readonly update: (chunk: Uint8Array) => void
  readonly digest: () => string
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
