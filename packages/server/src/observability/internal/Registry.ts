/**
 * The process-local Effect metrics (the global registry's snapshot) as families: counters,
 * gauges, histograms (cumulative buckets with `+Inf`), frequencies (one series per value) and
 * summaries (quantiles). Pairs of one name with different tags become one family.
 */
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import { type Family, type FamilyType, type Sample, sanitizeName } from "../Exposition.js"

const bigOrNumber = (v: unknown): number => (typeof v === "bigint" ? Number(v) : Number(v))

/** The registry snapshot as families, sorted by name. */
export const families = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): ReadonlyArray<Family> => {
  const byName = new Map<string, { help: string; type: FamilyType; samples: Array<Sample> }>()
  for (const pair of pairs) {
    const key = pair.metricKey
    const name = sanitizeName(key.name)
    const labels = Object.fromEntries(key.tags.map((t) => [t.key, t.value]))
    const state = pair.metricState
    const help = Option.getOrElse(key.description, () => name)
    const samples: Array<Sample> = []
    let type: FamilyType = "gauge"
    if (MetricState.isCounterState(state)) {
      type = "counter"
      samples.push({ name, labels, value: bigOrNumber(state.count) })
    } else if (MetricState.isGaugeState(state)) {
      samples.push({ name, labels, value: bigOrNumber(state.value) })
    } else if (MetricState.isHistogramState(state)) {
      type = "histogram"
      let hasInf = false
      for (const [bound, count] of state.buckets) {
        if (bound === Infinity) hasInf = true
        samples.push({ name: `${name}_bucket`, labels: { ...labels, le: bound === Infinity ? "+Inf" : String(bound) }, value: count })
      }
      if (!hasInf) samples.push({ name: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: state.count })
      samples.push({ name: `${name}_sum`, labels, value: state.sum }, { name: `${name}_count`, labels, value: state.count })
    } else if (MetricState.isFrequencyState(state)) {
      type = "counter"
      for (const [value, count] of state.occurrences) samples.push({ name, labels: { ...labels, value }, value: count })
    } else if (MetricState.isSummaryState(state)) {
      type = "summary"
      for (const [q, v] of state.quantiles) {
        if (Option.isSome(v)) samples.push({ name, labels: { ...labels, quantile: String(q) }, value: v.value })
      }
      samples.push({ name: `${name}_sum`, labels, value: state.sum }, { name: `${name}_count`, labels, value: state.count })
    } else continue
    const family = byName.get(name)
    if (family === undefined) byName.set(name, { help, type, samples })
    else if (family.type === type) family.samples.push(...samples)
  }
  return [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, f]) => ({ name, ...f }))
}
