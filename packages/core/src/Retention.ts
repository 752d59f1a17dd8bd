/**
 * The retention rules that need no database: how full a location is, when that lets copies go
 * before their minimum age, and what a copy whose deletion is called off goes back to. The
 * eligibility rule itself (DESIGN §4 invariant 1: enough verified archive copies at enough
 * sites, the policy's minimum age, no open transfer, bundle or staging request holding the copy)
 * is one query on the ops-db, run by the server's cleanup planner and again by its worker.
 */
import type * as Storage from "./Storage.js"

/** Free and total bytes of a location as its driver reports them. */
export interface SpaceFigures {
  readonly totalBytes: number
  readonly freeBytes: number
}

/**
 * Whether a location's fullness is measured against its configured capacity (by the bytes its
 * live copies hold); otherwise its driver's free and total bytes tell (`fractionOfSpace`).
 */
export const hasCapacity = (capacityBytes: number | null): capacityBytes is number => capacityBytes !== null && capacityBytes > 0

/** How full a location with a capacity is, as a fraction. */
export const fractionOfCapacity = (usedBytes: number, capacityBytes: number): number => usedBytes / capacityBytes

/** How full a location is by its driver's figures, as a fraction; undefined when they tell nothing (then it is never full). */
export const fractionOfSpace = (space: SpaceFigures | undefined): number | undefined =>
  space === undefined || space.totalBytes <= 0 ? undefined : (space.totalBytes - space.freeBytes) / space.totalBytes

/**
 * Whether a location is filled to its retention policy's `disk_usage_threshold`: there the
 * minimum age no longer holds verified, archived copies back.
 */
export const isFull = (used: number | undefined, threshold: number | null): boolean =>
  threshold !== null && used !== undefined && used >= threshold

/** The state a copy whose deletion is called off goes back to: STAGED at a PROCESSING location, PRESENT elsewhere. */
export const keptState = (locationType: Storage.LocationType | (string & {})): "STAGED" | "PRESENT" =>
  locationType === "PROCESSING" ? "STAGED" : "PRESENT"
