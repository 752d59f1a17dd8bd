/**
 * @ccat/client: file observations, find data and have it staged, from Effect programs or
 * plain JavaScript. Everything is derived from the API contract in @ccat/core.
 */
export * as CcatClient from "./CcatClient.js"
export * as Outbox from "./Outbox.js"
export * as RetryPolicy from "./RetryPolicy.js"
export * as FilingOutbox from "./FilingOutbox.js"
export * as PromiseClient from "./PromiseClient.js"
/** The Promise client's entry point, at the top level for plain JavaScript. */
export { createClient } from "./PromiseClient.js"
