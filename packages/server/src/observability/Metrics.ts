/**
 * The platform's metrics. Figures that must be right however many worker processes run are
 * derived from the ops-db (the single source of truth) at collection time, with a few aggregate
 * queries, instead of being counted in the memory of one process: items and bytes per state,
 * copies and usage per location, transfers per route, ages and durations, job queue depths.
 * Process-local Effect metrics (HTTP requests, anything a module records with `Metric`) are
 * added from the Effect registry. Both are rendered as Prometheus text and as Influx lines.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Exposition from "./Exposition.js"
import * as OpsDbFigures from "./internal/OpsDbFigures.js"
import * as Registry from "./internal/Registry.js"
import * as RepairFigures from "./internal/RepairFigures.js"
import * as AlertFigures from "./internal/AlertFigures.js"
import * as CircuitFigures from "./internal/CircuitFigures.js"
import type { Topology } from "@ccat/core"
import { LocationAudits } from "../lifecycle/Audit.js"
import { LifecyclePolicy } from "../lifecycle/Packaging.js"
import * as Routes from "../lifecycle/Routes.js"

export type { Family, Sample } from "./Exposition.js"

/** The collector: every family now, and the two renderings of it. */
export interface MetricsCollectorService {
  /** Every family: ops-db figures (or `ccat_ops_db_up 0` when it does not answer) and Effect metrics. */
  readonly collect: Effect.Effect<ReadonlyArray<Exposition.Family>>
  /** Prometheus text exposition format 0.0.4. */
  readonly prometheus: Effect.Effect<string>
  /** InfluxDB line protocol stamped with the collection time. */
  readonly lineProtocol: Effect.Effect<string>
}

/** The collector as a service, so `/metrics` and the Influx pusher share one (and its cache). */
export class MetricsCollector extends Context.Tag("@ccat/server/MetricsCollector")<MetricsCollector, MetricsCollectorService>() {}

/** Options of the collector. */
export interface Options {
  /** Collections within this time reuse the last one, so many scrapers cost the ops-db one set of queries. Default 5 s. */
  readonly cacheFor?: Duration.DurationInput
  /** A collection that takes longer is given up and reported as `ccat_ops_db_up 0`. Default 10 s. */
  readonly timeout?: Duration.DurationInput
}

/** The configuration the collector's thresholds come from, where this process has it. */
interface Settings {
  readonly policy: Topology.PolicyConfig | undefined
  readonly audits: ReadonlyMap<string, Topology.LocationAuditConfig>
  readonly breakerThreshold: number
}

const opsDbFamilies = Effect.fn("Metrics.opsDbFamilies")(function* (timeout: Duration.DurationInput, settings: Settings) {
  const start = Date.now()
  const figures = Effect.map(
    Effect.all([
      OpsDbFigures.collect,
      RepairFigures.collect(settings.policy?.archiveCopies),
      CircuitFigures.collect(settings.breakerThreshold),
      AlertFigures.collect(settings.policy, settings.audits)
    ]),
    (parts) => parts.flat()
  )
  const result = yield* figures.pipe(Effect.timeout(timeout), Effect.either)
  const up = result._tag === "Right" ? 1 : 0
  if (result._tag === "Left") yield* Effect.logWarning("metrics: the ops-db figures could not be read", result.left)
  const self: Array<Exposition.Family> = [
    OpsDbFigures.gauge("ccat_ops_db_up", "1 when the ops-db answered the metrics queries, else 0.", [{ labels: {}, value: up }]),
    OpsDbFigures.gauge("ccat_ops_db_collect_duration_seconds", "How long reading the ops-db figures took.", [
      { labels: {}, value: (Date.now() - start) / 1000 }
    ])
  ]
  return result._tag === "Right" ? [...self, ...result.right] : self
})

/** Builds a collector on the current SqlClient. */
export const make = (options: Options = {}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const timeout = options.timeout ?? Duration.seconds(10)
    // The copy target, audit cycles and stage waits are the lifecycle policy's, where this
    // process has one (`ccat serve` does); the breaker's threshold is the transfer policy's.
    const policy = yield* Effect.serviceOption(LifecyclePolicy)
    const settings: Settings = {
      policy: policy._tag === "Some" ? policy.value : undefined,
      audits: yield* LocationAudits,
      breakerThreshold: (yield* Routes.transferPolicy).breakerThreshold
    }
    const fromDb = yield* Effect.cachedWithTTL(
      opsDbFamilies(timeout, settings).pipe(Effect.provideService(SqlClient.SqlClient, sql)),
      options.cacheFor ?? Duration.seconds(5)
    )
    const collect = Effect.gen(function* () {
      const db = yield* fromDb
      const local = Registry.families(yield* Metric.snapshot)
      return [...db, ...local]
    }).pipe(Effect.withSpan("Metrics.collect"))
    return {
      collect,
      prometheus: Effect.map(collect, Exposition.prometheus),
      lineProtocol: Effect.map(collect, (families) => Exposition.lineProtocol(families, BigInt(Date.now()) * 1_000_000n))
    } satisfies MetricsCollectorService
  })

/** The collector on the ops-db's SqlClient. */
export const layer = (options: Options = {}): Layer.Layer<MetricsCollector, never, SqlClient.SqlClient> =>
  Layer.effect(MetricsCollector, make(options))
