/**
 * The disk driver as a location's `driver:` options name it, registered under technology `disk`:
 * the schema of those options (the one the start checks and the worker builds from) and the
 * registration the server finds it by.
 */
import { StorageDriver, StorageDriverRegistry, type StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Disk from "./Disk.js"

/** A disk location's options. */
export const Options = Schema.Struct({
  /** The location's folder; created if missing. Each location needs a folder of its own. */
  root: Schema.propertySignature(Schema.String.pipe(Schema.filter((r) => r.startsWith("/") || "must be an absolute folder path")))
    .annotations({ missingMessage: () => "a disk location needs a root folder" }),
  /**
   * Write the bulk of large objects past the page cache (`O_DIRECT`). Default true; false for a
   * folder whose objects are read again at once, or a network filesystem.
   */
  directIo: Schema.optionalWith(
    Schema.Boolean.annotations({ message: () => "must be true or false (default true: large durable writes go past the page cache)" }),
    { exact: true }
  ),
  /** fsync files and folders before a write counts as done. Default true; false only for scratch. */
  fsync: Schema.optionalWith(Schema.Boolean, { exact: true })
})
/** A disk location's options, decoded. */
export type Options = typeof Options.Type

/** The driver's options from a location's decoded ones. */
export const toOptions = (o: Options, name: string): Disk.Options => ({
  root: o.root,
  name,
  ...(o.directIo === undefined ? {} : { directIo: o.directIo }),
  ...(o.fsync === undefined ? {} : { fsync: o.fsync })
})

/** The disk driver, registered as technology `disk`: its objects are plain files under `root`. */
export const driver: StorageDriverRegistry.Driver = StorageDriverRegistry.define({
  technology: "disk",
  options: Options,
  make: (o, location) => Disk.make(toOptions(o, `disk:${location.name}`)),
  root: (o) => o.root,
  pathAccess: true
})

/** A disk storage from options written as a location's (a YAML or JSON value), decoded by `Options`. */
export const layer = (input: unknown): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError | ParseResult.ParseError> =>
  Layer.effect(
    StorageDriver.StorageDriver,
    Effect.flatMap(Schema.decodeUnknown(Options, { onExcessProperty: "error" })(input), (o) => Disk.make(toOptions(o, "disk")))
  )
