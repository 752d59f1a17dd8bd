/**
 * Checksums as the ops-db stores them: `algorithm:hex` (DESIGN §9). SHA-256 is the default
 * because Node hashes it fastest on these machines (about 1.9 GB/s per core with SHA-NI).
 */
import * as Schema from "effect/Schema"

/** The algorithms the platform accepts, with their digest length in hex characters. */
export const algorithms = {
  sha256: 64,
  sha1: 40,
  sha512: 128,
  md5: 32,
  blake2b512: 128
} as const

/** A checksum algorithm name the platform accepts. */
export type Algorithm = keyof typeof algorithms

/** The algorithm used when nothing else is configured. */
export const defaultAlgorithm: Algorithm = "sha256"

/** Node's `crypto.createHash` name for each algorithm. */
export const nodeHashName: Record<Algorithm, string> = {
  sha256: "sha256",
  sha1: "sha1",
  sha512: "sha512",
  md5: "md5",
  blake2b512: "blake2b512"
}

const pattern = /^(sha256|sha1|sha512|md5|blake2b512):([0-9a-f]+)$/

/** Why a checksum string is not valid, or undefined when it is. */
export const problem = (value: string): string | undefined => {
  const m = pattern.exec(value)
  if (m === null) {
    return `a checksum must be "algorithm:hex" with algorithm one of ${Object.keys(algorithms).join(", ")} and lower-case hex digits`
  }
  const expected = algorithms[m[1] as Algorithm]
  return m[2].length === expected ? undefined : `a ${m[1]} checksum has ${expected} hex digits, got ${m[2].length}`
}

/** A checksum string `algorithm:hex`, validated for a known algorithm and the right length. */
export const Checksum = Schema.String.pipe(
  Schema.filter((s) => problem(s) ?? true, { identifier: "Checksum" }),
  Schema.brand("Checksum")
)
/** A validated checksum string. */
export type Checksum = typeof Checksum.Type

/** Builds a checksum string from an algorithm and a hex digest. */
export const make = (algorithm: Algorithm, hex: string): Checksum => `${algorithm}:${hex.toLowerCase()}` as Checksum

/** Splits a checksum into its algorithm and hex digest. */
export const parse = (checksum: Checksum): { readonly algorithm: Algorithm; readonly hex: string } => {
  const i = checksum.indexOf(":")
  return { algorithm: checksum.slice(0, i) as Algorithm, hex: checksum.slice(i + 1) }
}
