/**
 * @ccat/core/testing: the test kit. Conformance suites that every storage driver and transfer
 * adapter runs (ours and integrators'), and helpers for tests on a real PostgreSQL.
 */

// --- database ---
export * as TestDatabase from "./TestDatabase.js"
export * as Fixtures from "./Fixtures.js"

// --- storage conformance ---
export * as StorageDriverSuite from "./StorageDriverSuite.js"

// --- transfer conformance ---
export * as TransferAdapterSuite from "./TransferAdapterSuite.js"

// --- waiting ---
export { waitUntil } from "./WaitUntil.js"
export * as WaitUntil from "./WaitUntil.js"
