/**
 * @ccat/storage-drivers: the storage drivers of the CCAT Data Center, each a namespace with
 * `make` and `layer(options)` that provide core's StorageDriver port, and beside each its
 * location options and registration (`DiskLocation`, `S3Location`, `TapeLocation`), which the
 * server finds by technology name (`Drivers.builtIn`).
 */
export * as Disk from "./Disk.js"
export * as DiskLocation from "./DiskLocation.js"
export * as Drivers from "./Drivers.js"
export * as S3 from "./S3.js"
export * as S3Location from "./S3Location.js"
export * as Tape from "./Tape.js"
export * as TapeLocation from "./TapeLocation.js"
export * as TapeLibrary from "./TapeLibrary.js"
export * as VirtualTapeLibrary from "./VirtualTapeLibrary.js"
export * as MtxTapeLibrary from "./MtxTapeLibrary.js"
