/**
 * @ccat/core: the domain, the ops-db, the ports and the API contract of the CCAT Data Center.
 * A barrel of namespaces, one per module (STYLE §1).
 */

// --- shared vocabulary ---
export * as Checksum from "./Checksum.js"
export * as RelativePath from "./RelativePath.js"

// --- domain and ops-db ---
export * as Topology from "./Topology.js"
export * as Migrations from "./Migrations.js"

// --- storage ports ---

// --- transfer ports ---
export * as TransferAdapter from "./TransferAdapter.js"
export * as TransferEndpoint from "./TransferEndpoint.js"
export * as TransferError from "./TransferError.js"

// --- API contract ---
export * as Api from "./Api.js"
export * as SystemApi from "./SystemApi.js"
