/**
 * What fixity audits and inventory passes did in this process, per site and location: counted
 * as they happen, like the sweep's figures. What holds across processes (when each location was
 * last audited, the dark objects still found, the copies now CORRUPT or MISSING) is in the ops-db
 * (`location_audit`, `location_inventory`, `dark_object`, `physical_copy`).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"

/** Bytes the audits of this process read back from storage. */
export const bytesAudited = Metric.counter("ccat_audit_bytes_total", {
  description: "Bytes of copies at rest read back and checksummed by the audits this process ran, per site and location.",
  incremental: true
})

/** Copies audited, by outcome: good (verified again), corrupt, missing. */
export const copiesAudited = Metric.counter("ccat_audit_copies_total", {
  description: "Copies at rest the audits this process ran read back, per site, location and outcome (good, corrupt, missing).",
  incremental: true
})

/** Objects listed by the inventory passes of this process. */
export const objectsInventoried = Metric.counter("ccat_inventory_objects_total", {
  description: "Objects listed in storage by the inventory passes this process ran, per site and location.",
  incremental: true
})

/** Inventory findings: dark objects (in storage, not in the ops-db) and copies found missing. */
export const inventoryFindings = Metric.counter("ccat_inventory_findings_total", {
  description: "Findings of the inventory passes this process ran, per site, location and finding (dark, missing).",
  incremental: true
})

/** Adds `n` to a counter under the site and location labels (and any more). */
export const add = (
  counter: Metric.Metric.Counter<number>,
  n: number,
  site: string,
  location: string,
  more: Readonly<Record<string, string>> = {}
): Effect.Effect<void> =>
  n === 0 ? Effect.void : Metric.incrementBy(
    Metric.taggedWithLabels(counter, [
      MetricLabel.make("site", site),
      MetricLabel.make("location", location),
      ...Object.entries(more).map(([k, v]) => MetricLabel.make(k, v))
    ]),
    n
  )
