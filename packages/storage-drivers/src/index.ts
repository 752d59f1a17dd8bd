/**
 * @ccat/storage-drivers: the storage drivers of the CCAT Data Center, each a namespace with
 * `make`, `layer(options)` and `layerConfig` that provide core's StorageDriver port.
 */
export * as Disk from "./Disk.js"
export * as S3 from "./S3.js"
export * as Tape from "./Tape.js"
export * as TapeLibrary from "./TapeLibrary.js"
export * as VirtualTapeLibrary from "./VirtualTapeLibrary.js"
export * as MtxTapeLibrary from "./MtxTapeLibrary.js"
