/**
 * The tape driver as a location's `driver:` options name it, registered under technology `tape`:
 * `library: virtual` keeps its volumes as files under `<root>/library`, `library: mtx` drives a
 * real changer and drives through `mtx` and `mt`. The catalog and the disk cache live under
 * `root`. One driver per location per process: two catalogs over one root would each forget the
 * other's writes (the server builds each location's storage once). The recall workers stop when
 * the storage's scope closes; the mtx backend holds no device between operations, so cartridges
 * stay where they are.
 */
import { StorageDriverRegistry, StorageError, Topology } from "@ccat/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import * as MtxTapeLibrary from "./MtxTapeLibrary.js"
import * as Tape from "./Tape.js"
import type * as TapeLibrary from "./TapeLibrary.js"
import * as VirtualTapeLibrary from "./VirtualTapeLibrary.js"

/** A folder or device path in driver options. */
const PathText = Schema.String.pipe(Schema.minLength(1, { message: () => "must be a path, not empty" }))

/** The folder of the catalog and the disk cache, which every tape location needs. */
const Root = Schema.propertySignature(PathText).annotations({ missingMessage: () => "a tape location needs a root folder" })

/** A size in driver options that must hold something. */
const PositiveByteSize = Topology.ByteSize.pipe(Schema.filter((n) => n > 0 || "must be more than zero bytes"))

/**
 * Options of a tape location whose volumes are files in a folder (`<root>/library`): a library
 * for tests and demonstrations that has the mechanics of a real one (few drives, mount and seek
 * times, volumes that fill up), so recalls are scheduled as they would be.
 */
export const VirtualOptions = Schema.Struct({
  /** Folder of the catalog, the disk cache and the library's volume files. */
  root: Root,
  library: Schema.Literal("virtual"),
  /** Cartridges, labelled CCAT000, CCAT001, ... */
  volumes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 4 }),
  /** Capacity of each cartridge. */
  volumeBytes: Schema.optionalWith(PositiveByteSize, { default: () => 1024 ** 3 }),
  drives: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 64)), { default: () => 1 }),
  /** Time to load a cartridge into a drive. */
  mountLatency: Schema.optionalWith(Topology.DurationText, { default: () => 0 }),
  /** Time to move over one tape file while positioning. */
  seekLatency: Schema.optionalWith(Topology.DurationText, { default: () => 0 }),
  /** Keep written and recalled objects in the disk cache; false makes every read a recall. */
  keepOnline: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
/** Options of a tape location on a virtual library, decoded. */
export type VirtualOptions = typeof VirtualOptions.Type

/** Options of a tape location on a real changer and drives, driven by `mtx` and `mt` (mt-st). */
export const MtxOptions = Schema.Struct({
  /** Folder of the catalog and the disk cache. */
  root: Root,
  library: Schema.Literal("mtx"),
  /** The changer's SCSI generic device, e.g. `/dev/sg3`. */
  changer: PathText,
  /** Non-rewinding drive devices in data-transfer-element order, e.g. `[/dev/nst0, /dev/nst1]`. */
  drives: Schema.Array(PathText).pipe(
    Schema.minItems(1, { message: () => "list at least one drive device" }),
    Schema.filter((ds) => new Set(ds).size === ds.length || "a drive device is listed twice")
  ),
  /** Only these cartridges are used (others may belong to other systems); all when omitted. */
  labels: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.pattern(/^\S+$/, { message: () => "a label is a barcode without spaces" }))).pipe(
      Schema.minItems(1, { message: () => "list at least one label, or leave labels out to use every cartridge" })
    )
  ),
  /** Native capacity of each cartridge; 12 TB (LTO-8) when omitted. */
  volumeBytes: Schema.optional(PositiveByteSize),
  /** Block size of device writes and reads; 256 KiB when omitted. */
  blockSize: Schema.optional(
    Topology.ByteSize.pipe(Schema.filter((n) => (n >= 512 && n <= 16 * 1024 ** 2) || "must be from 512 bytes to 16 MiB"))
  ),
  /** The `mt` and `mtx` programs, when they are not on the PATH under those names. */
  mt: Schema.optional(PathText),
  mtx: Schema.optional(PathText),
  /** Keep written and recalled objects in the disk cache; false makes every read a recall. */
  keepOnline: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
/** Options of a tape location on a real library, decoded. */
export type MtxOptions = typeof MtxOptions.Type

const libraries = `must be "virtual" (volumes as files in a folder) or "mtx" (a real changer and drives)`

/** Which library first, so a missing or unknown one is named as such rather than as every other option's problem. */
const Library = Schema.Struct(
  {
    library: Schema.propertySignature(
      Schema.String.pipe(Schema.filter((l) => l === "virtual" || l === "mtx" || `${libraries}, got ${JSON.stringify(l)}`))
    ).annotations({ missingMessage: () => `${libraries}, got nothing` })
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)

/** Options of a tape location, by `library` (`virtual` or `mtx`). */
export const Options = Schema.compose(Library, Schema.Union(VirtualOptions, MtxOptions), { strict: false })
/** Options of a tape location, decoded. */
export type Options = typeof Options.Type

/** A failure of the named tape library, renamed to say which location's library it is. */
const libraryError = (libraryName: string, location: string) => <E>(e: E): E =>
  StorageError.isStorageError(e) && e.driver === libraryName
    ? new StorageError.StorageError({
      reason: e.reason,
      driver: `${libraryName}:${location}`,
      method: e.method,
      key: e.key,
      description: e.description,
      cause: e.cause
    }) as E
    : e

/**
 * The library's failures name the location too: a site may run several libraries, and
 * "mtx-tape.volumes: Unavailable" alone does not say which one an operator must look at.
 * Failures of the bytes being appended (the cache read) keep their own driver's name.
 */
const naming = (library: TapeLibrary.TapeLibrary, location: string): TapeLibrary.TapeLibrary => {
  const rename = libraryError(library.name, location)
  return {
    ...library,
    volumes: Effect.mapError(library.volumes, rename),
    mount: (drive, volume) => Effect.mapError(library.mount(drive, volume), rename),
    seek: (drive, fileNumber) => Effect.mapError(library.seek(drive, fileNumber), rename),
    append: (drive, afterFile, body) => Effect.mapError(library.append(drive, afterFile, body), rename),
    read: (drive) => Stream.mapError(library.read(drive), rename)
  }
}

/** The tape storage of a location from its decoded options. */
export const make = (o: Options, location: string): Effect.Effect<Tape.Service, StorageError.StorageError, Scope.Scope> =>
  Effect.gen(function* () {
    const library = o.library === "virtual"
      ? yield* VirtualTapeLibrary.make({
        root: path.join(o.root, "library"),
        volumes: o.volumes,
        capacityBytes: o.volumeBytes,
        drives: o.drives,
        mountLatency: Duration.millis(o.mountLatency),
        seekLatency: Duration.millis(o.seekLatency)
      }).pipe(Effect.mapError(libraryError("virtual-tape", location)))
      : MtxTapeLibrary.make({
        changer: o.changer,
        drives: o.drives,
        labels: o.labels,
        capacityBytes: o.volumeBytes,
        blockSize: o.blockSize,
        mt: o.mt,
        mtx: o.mtx
      })
    return yield* Tape.make({ root: o.root, library: naming(library, location), keepOnline: o.keepOnline, name: `tape:${location}` })
  })

/**
 * The tape driver, registered as technology `tape`: nearline, so only for LONG_TERM_ARCHIVE
 * locations; its folder holds the catalog and cache, not files by key, so no adapter or staging
 * reads it by path.
 */
export const driver: StorageDriverRegistry.Driver = StorageDriverRegistry.define({
  technology: "tape",
  options: Options,
  make: (o, location) => make(o, location.name),
  root: (o) => o.root,
  pathAccess: false,
  locationTypes: ["LONG_TERM_ARCHIVE"]
})
