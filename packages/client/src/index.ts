/**
 * @ccat/client: file observations, find data and have it staged, from Effect programs or
 * plain JavaScript. Everything is derived from the API contract in @ccat/core.
 */
/** The Effect client derived from the contract. */
export * as CcatClient from "./CcatClient.js"
/** The durable, ordered, file-backed outbox (generic). */
export * as Outbox from "./Outbox.js"
/** Backoff and the classification of failures, for direct calls and the outbox. */
export * as RetryPolicy from "./RetryPolicy.js"
/** Calls of the contract (filings) made durable through the outbox. */
export * as FilingOutbox from "./FilingOutbox.js"
/** Observations of any size: batches of files, several requests in flight. */
export * as FilingBatches from "./FilingBatches.js"
/** One raw file straight from the archive, streamed to a path and verified. */
export * as FileDownload from "./FileDownload.js"
/** A whole package's tar straight from the archive, streamed to a path and verified. */
export * as PackageDownload from "./PackageDownload.js"
/** Waiting for a staging request and getting the staged files' local paths. */
export * as Staging from "./Staging.js"
/** The Promise client for code that does not use Effect. */
export * as PromiseClient from "./PromiseClient.js"
/** The Promise client's entry point, at the top level for plain JavaScript. */
export { createClient } from "./PromiseClient.js"
