/**
 * The StorageDriver conformance suite: written once, run by every driver (ours and an
 * integrator's) with its own layer, so "a driver" means the same thing everywhere (STYLE §2).
 *
 *   StorageDriverSuite.run({ name: "disk", layer: Disk.layer({ root }) })
 *
 * It runs on the real clock and real I/O. Every test works under its own random prefix, so the
 * suite can share a location (a bucket, a folder) with other tests. The cases live in
 * `internal/StorageSuiteReading.ts` and `internal/StorageSuiteWriting.ts`.
 */
import { describe, layer } from "@effect/vitest"
import type * as Layer from "effect/Layer"
import type { StorageDriver } from "../StorageDriver.js"
import { reading } from "./internal/StorageSuiteReading.js"
import type { Run } from "./internal/StorageSuiteRun.js"
import { writing } from "./internal/StorageSuiteWriting.js"
import { bodyOf, bytesOf, digestOf } from "./StorageTestBodies.js"

export { bodyOf, bytesOf, digestOf }

/** How to run the suite against one driver. */
export interface Options<E> {
  /** Shown in the test names, e.g. "s3 (radosgw 16.2.15)". */
  readonly name: string
  /** Provides the driver under test; built once for the whole suite. */
  readonly layer: Layer.Layer<StorageDriver, E>
  /**
   * Size of the streamed round trip. Default: env CCAT_CONFORMANCE_LARGE_BYTES, else 2 GiB.
   * Drivers that cannot hold that much in a test (an in-memory example) pass less.
   */
  readonly largeBytes?: number | undefined
  /** Keys created by the pagination test; more than 1,000 so listing must page. Default 1005. */
  readonly listKeys?: number | undefined
  /** Whether to check that memory stays bounded during the large round trip. Default true. */
  readonly boundedMemory?: boolean | undefined
  /** Per-test timeout in milliseconds. Default 300 000. */
  readonly timeout?: number | undefined
}

/** The size of the streamed round trip when the driver's test does not choose one. */
export const defaultLargeBytes = (): number => {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  const fromEnv = Number(env?.CCAT_CONFORMANCE_LARGE_BYTES)
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 2 * 1024 * 1024 * 1024
}

const run_ = () => `conformance-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

/** Registers the conformance tests for one driver in the current vitest file. */
export const run = <E>(options: Options<E>): void => {
  const large = options.largeBytes ?? defaultLargeBytes()
  const listKeys = options.listKeys ?? 1005
  const timeout = options.timeout ?? 300_000
  const prefix = run_()
  const key = (name: string) => `${prefix}/${name}`

  describe(`StorageDriver conformance: ${options.name}`, () => {
    layer(options.layer, { timeout: "5 minutes", excludeTestServices: true })((it) => {
      const run: Run = { it, key, options: options as Options<unknown>, large, listKeys, timeout }
      reading(run)
      writing(run)
    })
  })
}
