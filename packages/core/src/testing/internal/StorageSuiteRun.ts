/**
 * What the storage conformance suite's cases share: the driver under test, the keys of this run,
 * the sizes and timeout the driver's test chose, and small helpers for bodies and failures.
 */
import type { Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import type { StorageDriver } from "../../StorageDriver.js"
import { StorageError } from "../../StorageError.js"
import { runtimeHasher } from "../../StorageHasher.js"
import type { Options } from "../StorageDriverSuite.js"

/** One run of the suite against one driver: what every case needs. */
export interface Run {
  /** The test methods of the suite's layer (the driver built once). */
  readonly it: Vitest.MethodsNonLive<StorageDriver, true>
  /** A key of this run, under a prefix no other run uses. */
  readonly key: (name: string) => string
  readonly options: Options<unknown>
  /** Bytes of the streamed round trip. */
  readonly large: number
  /** Keys of the pagination case. */
  readonly listKeys: number
  /** Per-case timeout in milliseconds. */
  readonly timeout: number
}

/** A MiB. */
export const MiB = 1024 * 1024

/** The runtime's hash, the reference the driver's checksums are compared with. */
export const hasher = runtimeHasher!

/** A one-chunk body of text. */
export const text = (s: string): Stream.Stream<Uint8Array> => Stream.make(new TextEncoder().encode(s))

/** Bytes as text. */
export const decode = (u: Uint8Array) => new TextDecoder().decode(u)

/** The reason an effect failed with, or "success". */
export const reasonOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.exit(effect).pipe(Effect.map((exit) => {
    if (Exit.isSuccess(exit)) return "success"
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    return failure instanceof StorageError ? failure.reason : `other: ${String(exit.cause)}`
  }))

/** This process's resident memory, where the runtime tells. */
export const peakRss = () => {
  const proc = (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process
  return proc?.memoryUsage?.().rss ?? 0
}
