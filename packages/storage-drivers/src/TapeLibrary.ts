/**
 * What the tape driver needs from a tape library: volumes with capacities, drives that mount a
 * volume, position it at a tape file, append a file at the end of data, and read the file at
 * the current position. Two implementations: `VirtualTapeLibrary` (a folder, for tests and the
 * demo) and `MtxTapeLibrary` (real drives through `mt` and `mtx`).
 */
import type { StorageError } from "@ccat/core"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"

/** A cartridge in the library. */
export interface Volume {
  /** The barcode label, e.g. "CCAT01L8". */
  readonly label: string
  readonly capacityBytes: number
}

/** What the library did, for tests, metrics and the demo. */
export interface Event {
  readonly _tag: "Mount" | "Unmount" | "Seek" | "Append" | "Read"
  readonly drive: number
  readonly volume: string
  readonly fileNumber?: number | undefined
}

/** A tape library with `drives` drives; drive numbers are 0 .. drives-1. */
export interface TapeLibrary {
  readonly name: string
  readonly drives: number
  /** The cartridges the driver may write to and read from. */
  readonly volumes: Effect.Effect<ReadonlyArray<Volume>, StorageError.StorageError>
  /** Loads the volume into the drive (unloading what was there); slow on real hardware. */
  readonly mount: (drive: number, volume: string) => Effect.Effect<void, StorageError.StorageError>
  /** Positions the mounted volume at the start of tape file `fileNumber` (0-based). */
  readonly seek: (drive: number, fileNumber: number) => Effect.Effect<void, StorageError.StorageError>
  /**
   * Appends the body as tape file `afterFile`, dropping whatever follows it on the volume. A
   * failed, interrupted or killed append leaves no file the catalog names: the driver commits a
   * file only after the append returned, and passes the next append the committed count.
   */
  readonly append: <E>(
    drive: number,
    afterFile: number,
    body: Stream.Stream<Uint8Array, E>
  ) => Effect.Effect<{ readonly fileNumber: number; readonly bytes: number }, StorageError.StorageError | E>
  /** Reads the tape file at the current position to its end. */
  readonly read: (drive: number) => Stream.Stream<Uint8Array, StorageError.StorageError>
  /** Everything the library did so far. */
  readonly events: Effect.Effect<ReadonlyArray<Event>>
}
