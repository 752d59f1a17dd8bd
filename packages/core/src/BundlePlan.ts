/**
 * How RawDataPackages waiting at a site's BUFFERs are cut into DataTransferPackages (bundles):
 * oldest package first, per buffer, up to a size target; a partial bundle goes once its oldest
 * package waited long enough. The target follows the first route out: what one of its transfers
 * moves in the route's `bundleTransferTime` at its measured bandwidth (no faster than its share
 * of the route's limit), within the policy's bounds. Pure: the server reads the waiting packages
 * and the route's figures from the ops-db and claims the planned bundles in one transaction.
 */
import type * as Ids from "./Ids.js"

/** A package waiting at a buffer for a bundle. */
export interface WaitingPackage {
  readonly id: Ids.RawDataPackageId
  readonly sizeBytes: number
  /** The buffer it waits in: a bundle holds packages of one buffer. */
  readonly locationId: string
  /** How long it has waited there. */
  readonly waitedMs: number
}

/** One bundle the plan asks for: packages of one buffer, oldest first. */
export interface PlannedBundle {
  readonly locationId: string
  readonly packages: ReadonlyArray<Ids.RawDataPackageId>
  readonly sizeBytes: number
}

/**
 * Fills bundles per buffer in waiting order up to `targetBytes` (a larger package goes alone).
 * Full bundles go now; the last, partial one only once its oldest package waited `maxWaitMs`.
 */
export const planBundles = (
  packages: ReadonlyArray<WaitingPackage>,
  targetBytes: number,
  maxWaitMs: number
): ReadonlyArray<PlannedBundle> => {
  const out: Array<PlannedBundle> = []
  const byLocation = new Map<string, Array<WaitingPackage>>()
  for (const p of packages) byLocation.set(p.locationId, [...(byLocation.get(p.locationId) ?? []), p])
  for (const [locationId, list] of byLocation) {
    let current: Array<WaitingPackage> = []
    let bytes = 0
    const close = () => {
      out.push({ locationId, packages: current.map((p) => p.id), sizeBytes: bytes })
      current = []
      bytes = 0
    }
    for (const p of list) {
      if (current.length > 0 && bytes + p.sizeBytes > targetBytes) close()
      current.push(p)
      bytes += p.sizeBytes
      if (bytes >= targetBytes) close()
    }
    if (current.length > 0 && Math.max(...current.map((p) => p.waitedMs)) >= maxWaitMs) close()
  }
  return out
}

/** The policy's bundle sizes: the fixed target, and the bounds of a target a route's pace sets. */
export interface SizeInputs {
  readonly bundleTargetBytes: number
  readonly bundleMinBytes: number
  readonly bundleMaxBytes: number
}

/** What the first route out tells about its pace; each figure undefined when it is not known. */
export interface RoutePace {
  /** Bytes per second measured on the route. */
  readonly measuredBandwidth: number | undefined
  /** How long one bundle's transfer should take, in milliseconds. */
  readonly bundleTransferTime: number | undefined
  /** One transfer's share of the route's bandwidth limit, in bytes per second; undefined when unlimited. */
  readonly transferShare: number | undefined
}

/**
 * The size target of bundles: the bytes one transfer moves in `bundleTransferTime` at the
 * measured bandwidth (no faster than its share of the route's limit), within `bundleMinBytes`
 * and `bundleMaxBytes`. Without both figures (or without a route) it is `bundleTargetBytes`.
 */
export const targetBytes = (policy: SizeInputs, pace: RoutePace | undefined): number => {
  const measured = pace?.measuredBandwidth
  const millis = pace?.bundleTransferTime
  if (pace === undefined || measured === undefined || millis === undefined) return policy.bundleTargetBytes
  const rate = pace.transferShare === undefined ? measured : Math.min(measured, pace.transferShare)
  const bytes = Math.round((rate * millis) / 1000)
  return Math.min(policy.bundleMaxBytes, Math.max(policy.bundleMinBytes, bytes))
}
