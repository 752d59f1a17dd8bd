/**
 * Every lifecycle stage, in the order data flows through them. A worker process runs all of
 * them for its site; a stage with nothing to do at a site (no SOURCE, no archive) finds no work.
 */
import * as Archiving from "./Archiving.js"
import * as Arrival from "./Arrival.js"
import * as Audit from "./Audit.js"
import * as Bundling from "./Bundling.js"
import * as Cleanup from "./Cleanup.js"
import * as History from "./History.js"
import * as Inventory from "./Inventory.js"
import * as Packaging from "./Packaging.js"
import * as Repair from "./Repair.js"
import type { Stage } from "./Stage.js"
import * as Staging from "./Staging.js"
import * as Sweep from "./Sweep.js"
import * as Transfer from "./Transfer.js"

/**
 * The stages a site's workers run. `after` links a stage's planner to the stages whose finished
 * jobs make its work: a written package waits for a bundle, an arrived one for a bundle to the
 * next hop and for its archive copy, an archived one for the cleanup of its buffer copies.
 */
export const all = [
  Packaging.stage,
  { ...Bundling.stage, after: [Packaging.name, Arrival.name] },
  Transfer.stage,
  Arrival.stage,
  { ...Archiving.stage, after: [Arrival.name] },
  Staging.stage,
  Repair.stage,
  { ...Cleanup.stage, after: [Archiving.name] },
  Sweep.stage,
  Audit.stage,
  Inventory.stage,
  History.stage
] as const satisfies ReadonlyArray<Stage<any>>

/** What the stages need from their environment. */
export type Requirements = (typeof all)[number] extends Stage<infer R> ? R : never
