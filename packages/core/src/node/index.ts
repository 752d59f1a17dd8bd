/**
 * @ccat/core/node: the Node.js platform layer of core: the embedded PostgreSQL runtime, the
 * ops-db connection layer, Node stream helpers, packages opened by their path, and the writer of
 * package and bundle tars. Nothing else in core imports Node modules.
 */

// --- database runtime ---
export * as EmbeddedDatabase from "./EmbeddedDatabase.js"
export * as OpsDb from "./OpsDb.js"
export * as LoopbackPort from "./LoopbackPort.js"

// --- streams and files ---
export * as LocalTransfer from "./LocalTransfer.js"
export * as TransferHost from "./TransferHost.js"
export * as TransferProcess from "./TransferProcess.js"
export * as Hashing from "./Hashing.js"
export * as HashRing from "./HashRing.js"
export * as PackageFile from "./PackageFile.js"
export * as ArchiveWriter from "./ArchiveWriter.js"
export * as FolderArchive from "./FolderArchive.js"
export * as PackageWriter from "./PackageWriter.js"

// --- process tuning ---
export * as GcTuning from "./GcTuning.js"
