/**
 * What each condition of the catalogue finds in the ops-db now, as rows of `key` (unique among
 * what it finds), `labels` (strings that tell a person which thing), `severity`, `summary`,
 * `description` and `started_at` (when the condition began to hold, where the data says; else null, and the
 * incident counts from when it was first seen).
 *
 * The failed packages, bundles and staging requests are one incident per item, labelled with its
 * id, read through the partial indexes of open or failed rows. Every other condition is the
 * shipped Prometheus rule's own comparison over the same figures `/metrics` exports (the circuits'
 * open time, each location's fill and its threshold, the oldest wait per stage and its allowance,
 * the integrity findings and audit lag), so both raise the same alerts, with the same labels
 * (`circuit`, `finding`, `stage`, `location`, ...), from the same numbers; those figures read the
 * maintained counts and bounded index descents, whatever the size of the catalog.
 */
import type { Topology } from "@ccat/core"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as AlertFigures from "../observability/internal/AlertFigures.js"
import * as CircuitFigures from "../observability/internal/CircuitFigures.js"
import * as IntegrityFamilies from "../observability/internal/IntegrityFamilies.js"
import type { Family } from "../observability/Exposition.js"
import * as Catalogue from "./Catalogue.js"
import type { AlertName } from "./Catalogue.js"
import type { NotifierConfig } from "./NotifierConfig.js"

/** What the evaluation needs besides the ops-db: the configured thresholds and the running policies. */
export interface Settings {
  readonly conditions: NotifierConfig["conditions"]
  /** The lifecycle policy (stage allowances, audit cycles); absent, the configuration's defaults. */
  readonly policy: Topology.PolicyConfig | undefined
  readonly audits: ReadonlyMap<string, Topology.LocationAuditConfig>
  /** Consecutive failed attempts that open a circuit. */
  readonly breakerThreshold: number
}

/** A condition's current findings, as a query of the rows described above. */
export type Query = (sql: SqlClient.SqlClient) => Fragment

/** A FAILED row of `table`, one incident each, labelled with its id and entity. */
const failedRows = (entity: string, table: "raw_data_package" | "data_transfer_package", name: AlertName): Query => (sql) => sql`
  select ${name}::text || ':' || t.id as key,
    jsonb_build_object('id', t.id::text, 'entity', ${entity}::text, 'path', t.relative_path::text) as labels,
    ${Catalogue.byName(name).severity}::text as severity,
    ${entity}::text || ' ' || t.relative_path || ' ended FAILED' as summary,
    coalesce(t.error_message, '') as description,
    t.updated_at as started_at
  from ${sql(table)} t where t.status = 'failed' and t.status <> 'completed'`

const stagingFailed: Query = (sql) => sql`
  select 'CcatStagingRequestFailed:' || r.id as key,
    jsonb_build_object('id', r.id::text, 'entity', 'StagingRequest', 'account', a.name::text, 'location', l.name::text) as labels,
    ${Catalogue.byName("CcatStagingRequestFailed").severity}::text as severity,
    'StagingRequest ' || r.id || ' of ' || a.name || ' to ' || l.name || ' ended FAILED' as summary,
    coalesce(r.error_message, '') as description,
    r.updated_at as started_at
  from staging_request r join account a on a.id = r.account_id join data_location l on l.id = r.data_location_id
  where r.status = 'failed'`

/** The per-item conditions, each a query over the ops-db's failed rows. */
export const itemQueries: ReadonlyArray<readonly [AlertName, Query]> = [
  ["CcatPackageFailed", failedRows("RawDataPackage", "raw_data_package", "CcatPackageFailed")],
  ["CcatBundleFailed", failedRows("DataTransferPackage", "data_transfer_package", "CcatBundleFailed")],
  ["CcatStagingRequestFailed", stagingFailed]
]

/** One thing a figure-based condition holds for. */
export interface Finding {
  readonly labels: Readonly<Record<string, string>>
  readonly summary: string
  readonly description: string
  readonly startedAt: Date | null
}

type Labels = Readonly<Record<string, string>>
const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

/** A family's samples by label set. */
const samples = (families: ReadonlyArray<Family>, name: string) =>
  new Map((families.find((f) => f.name === name)?.samples ?? []).map((s) => [keyOf(s.labels), s] as const))

const hours = (seconds: number) => (seconds >= 7200 ? `${(seconds / 3600).toFixed(1)} h` : `${Math.round(seconds / 60)} min`)

/**
 * The figure-based conditions' findings now, by alert name: what `/metrics` would export, put
 * through the rules' comparisons, with the thresholds the notifier's configuration may override.
 */
export const figureFindings = (
  s: Settings
): Effect.Effect<ReadonlyMap<AlertName, ReadonlyArray<Finding>>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const [circuits, alertFigures, integrity] = yield* Effect.all([
      CircuitFigures.collect(s.breakerThreshold),
      AlertFigures.collect(s.policy, s.audits),
      IntegrityFamilies.collect
    ])
    const all = [...circuits, ...alertFigures, ...integrity]
    const now = Date.now()
    const since = (secondsAgo: number) => new Date(now - secondsAgo * 1000)
    const c = s.conditions
    const out = new Map<AlertName, Array<Finding>>(
      ["CcatCircuitOpen", "CcatLocationFull", "CcatStageBacklogOld", "CcatAuditFindings"].map((n) => [n as AlertName, []])
    )

    const openFor = c.circuitOpenFor / 1000
    for (
      const [circuit, family] of [["route", "ccat_route_circuit_open_seconds"], ["location", "ccat_location_circuit_open_seconds"]] as const
    ) {
      for (const x of samples(all, family).values()) {
        if (x.value <= openFor) continue
        const what = circuit === "route"
          ? `route ${x.labels.from} -> ${x.labels.to} (${x.labels.adapter})`
          : `transfers to ${x.labels.location} (${x.labels.site})`
        out.get("CcatCircuitOpen")!.push({
          labels: { ...x.labels, circuit },
          summary: `The circuit of ${what} has been open for ${hours(x.value)}`,
          description: `every transfer attempt has failed since ${
            since(x.value).toISOString()
          }; \`ccat status\` shows the circuit with the last error`,
          startedAt: since(x.value - openFor)
        })
      }
    }

    const thresholds = samples(all, "ccat_location_fill_threshold_ratio")
    for (const [k, x] of samples(all, "ccat_location_fill_ratio")) {
      const threshold = c.locationFullPercent !== undefined
        ? c.locationFullPercent / 100
        : thresholds.get(k)?.value ?? AlertFigures.defaultFillThreshold
      if (x.value <= threshold) continue
      out.get("CcatLocationFull")!.push({
        labels: x.labels,
        summary: `${x.labels.location} (${x.labels.site}) is ${Math.round(x.value * 100)} % full`,
        description: `above its threshold of ${Math.round(threshold * 100)} %: cleanup cannot bring it down; \`ccat status\` (Locations)`,
        startedAt: null
      })
    }

    const allowedByPolicy = AlertFigures.allowedWaitSeconds(s.policy)
    for (const x of samples(all, "ccat_stage_oldest_waiting_seconds").values()) {
      const stage = x.labels.stage as AlertFigures.StageName
      const override = c.stageMaxWait[stage]
      const allowed = override !== undefined ? override / 1000 : allowedByPolicy[stage]
      if (!(x.value > allowed)) continue
      out.get("CcatStageBacklogOld")!.push({
        labels: x.labels,
        summary: `Work has waited ${hours(x.value)} at the ${stage} stage`,
        description: `longer than the ${hours(allowed)} the stage allows; \`ccat status\` (Lifecycle) shows what waits`,
        startedAt: since(x.value - allowed)
      })
    }

    const findings = [
      ["corrupt", "ccat_location_corrupt_copies", "copies CORRUPT (read back, checksum mismatch), not repaired"],
      ["missing", "ccat_location_missing_copies", "copies MISSING (no object in storage), not repaired"],
      ["dark", "ccat_location_dark_objects", "objects in storage that no copy accounts for"]
    ] as const
    for (const [finding, family, what] of findings) {
      for (const x of samples(all, family).values()) {
        if (x.value <= 0) continue
        out.get("CcatAuditFindings")!.push({
          labels: { ...x.labels, finding },
          summary: `${x.value} ${what} at ${x.labels.location} (${x.labels.site})`,
          description: "`ccat integrity` lists them; see docs/integrity.md",
          startedAt: null
        })
      }
    }
    const cycles = samples(all, "ccat_location_audit_cycle_seconds")
    for (const [k, x] of samples(all, "ccat_location_audit_lag_seconds")) {
      const cycle = cycles.get(k)?.value
      if (cycle === undefined) continue
      const allowed = cycle + c.auditLagGrace / 1000
      if (x.value <= allowed) continue
      out.get("CcatAuditFindings")!.push({
        labels: { ...x.labels, finding: "audit_lag" },
        summary: `Audits at ${x.labels.location} (${x.labels.site}) are ${hours(x.value)} behind`,
        description: `the oldest verification is past the audit cycle and its grace (${hours(allowed)}); \`ccat integrity\` (AUDIT LAG)`,
        startedAt: since(x.value - allowed)
      })
    }
    return out
  })

/** Findings as the rows of a query, for the same reconciliation as the per-item conditions. */
export const findingsQuery = (name: AlertName, findings: ReadonlyArray<Finding>): Query => (sql) => {
  const rows = findings.map((f) => ({
    key: `${name}:${keyOf(f.labels)}`,
    labels: f.labels,
    severity: Catalogue.severityOf(name, f.labels),
    summary: f.summary,
    description: f.description,
    started_at: f.startedAt?.toISOString() ?? null
  }))
  return sql`
    select f.key, f.labels, f.severity, f.summary, f.description, f.started_at
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      as f(key text, labels jsonb, severity text, summary text, description text, started_at timestamptz)`
}
