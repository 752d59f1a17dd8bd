/**
 * The figures the shipped alerting rules (`docs/alerts/ccat-rules.yml`) compare that the other
 * families do not already give: each location's fill and the fill its retention acts at, its
 * audit cycle, and per lifecycle stage how long the oldest work has waited and how long the
 * policy lets it. A threshold is exported beside its figure, from the running configuration,
 * so a rule compares one with the other and follows the configuration without being edited.
 * Ages read only live rows through partial indexes; the fill reads the maintained counts.
 */
import type { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Family } from "../Exposition.js"
import { gauge } from "./OpsDbFigures.js"

/** The lifecycle stages whose waiting work is timed, in the order data flows. */
export const stages = ["package", "bundle", "transfer", "archive", "staging"] as const
/** A timed lifecycle stage. */
export type StageName = (typeof stages)[number]

/** Fill a location with a capacity and no retention threshold (an archive kept forever) is alerted at. */
export const defaultFillThreshold = 0.9

/** The policy's `bundleMaxWait` when the process has no policy: the configuration's default. */
const defaultBundleMaxWaitMs = 6 * 3600_000

/**
 * How long work may wait at each stage before it counts as stuck, in seconds. A partial bundle
 * leaves once its oldest package waited `bundleMaxWait`, so the bundle stage gets that and an
 * hour for a planner round and the write; the others have no setting of their own and get a
 * bound no healthy system reaches: an hour to be claimed by a package once an observation is
 * closed, a day for a bundle in one state (retries and backoff included; a bundle that keeps
 * failing ends FAILED first), twelve hours to archive what arrived (a tape archive's mounts) and
 * for a staging request in one state (tape recalls).
 */
export const allowedWaitSeconds = (policy: Topology.PolicyConfig | undefined): Readonly<Record<StageName, number>> => ({
  package: 3600,
  bundle: (policy?.bundleMaxWait ?? defaultBundleMaxWaitMs) / 1000 + 3600,
  transfer: 24 * 3600,
  archive: 12 * 3600,
  staging: 12 * 3600
})

/**
 * The written packages PRESENT in a BUFFER waiting there, as the status snapshot counts them: at
 * a site with an archive to be archived, elsewhere to be bundled unless a bundle holds them that
 * is open, or completed and sent from that site. `min(created_at)` of their buffer copies is
 * when the oldest arrived (the bundling planner times `bundleMaxWait` from it too).
 */
const oldestAtBuffer = (archiveSite: boolean) => `
  select min(c.created_at) from raw_data_package p
  join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT'
  join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
  where p.status = 'in_progress'
    and ${archiveSite ? "" : "not"} exists (select 1 from data_location a where a.site_id = l.site_id and a.type = 'LONG_TERM_ARCHIVE')
    ${
      archiveSite ? "" : `and not exists (
      select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
      where m.raw_data_package_id = p.id
        and (d.status <> 'completed' or exists (
          select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
          where t.data_transfer_package_id = d.id and fl.site_id = l.site_id)))`
    }`

/**
 * When the oldest waiting work at each stage started waiting: files of a closed observation not
 * yet claimed by a package (since they were filed or the observation closed, whichever came
 * later: files of an open observation wait for it by design), packages waiting to be bundled or
 * archived (since they arrived in the buffer), bundles on their way and open staging requests
 * (since their last change of state, so a retried one starts again). One statement per stage,
 * each over the live rows of its own partial index.
 */
const since: Readonly<Record<StageName, string>> = {
  package: `select min(greatest(f.filed_at, coalesce(e.end_at, e.updated_at))) from raw_data_file f
            join executed_obs_unit e on e.id = f.executed_obs_unit_id
            where f.state = 'filed' and f.raw_data_package_id is null
              and (e.end_at is not null or e.status in ('completed', 'failed'))`,
  bundle: oldestAtBuffer(false),
  transfer: `select min(updated_at) from data_transfer_package where status in ('pending', 'scheduled', 'in_progress')`,
  archive: oldestAtBuffer(true),
  staging: `select min(updated_at) from staging_request where status in ('pending', 'scheduled', 'in_progress')`
}

/** How long the oldest work at a stage has waited, in seconds; 0 when none waits. */
const waitedAt = (sql: SqlClient.SqlClient, stage: StageName) =>
  Effect.map(
    sql.unsafe<{ v: number }>(`select coalesce(greatest(0, extract(epoch from now() - (${since[stage]}))), 0)::float8 as v`),
    ([row]) => ({ labels: { stage }, value: Number(row?.v ?? 0) })
  )

/**
 * The threshold families. `policy` is the running configuration's, where the process has one;
 * without it the audit cycle is left out (it would be a guess) and the stages' allowed waits
 * are the configuration's defaults.
 */
export const collect = (
  policy: Topology.PolicyConfig | undefined,
  audits: ReadonlyMap<string, Topology.LocationAuditConfig>
): Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const locations = yield* sql<{
      site: string
      location: string
      ltype: string
      tech: string
      capacity: number | null
      used: number
      threshold: number | null
    }>`
      select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
        l.capacity_bytes::float8 as capacity, r.disk_usage_threshold::float8 as threshold,
        (select coalesce(sum(c.bytes), 0) from ops_count c
         where c.entity = 'PhysicalCopy' and c.location_id = l.id and c.state <> 'DELETED')::float8 as used
      from data_location l join site s on s.id = l.site_id
      left join retention_policy r on r.data_location_id = l.id
      order by 1, 2`
    const waited = yield* Effect.forEach(stages, (stage) => waitedAt(sql, stage))
    const labels = (l: (typeof locations)[number]) => ({ site: l.site, location: l.location, type: l.ltype, technology: l.tech })
    const sized = locations.filter((l) => l.capacity !== null && Number(l.capacity) > 0)
    const allowed = allowedWaitSeconds(policy)
    const families: Array<Family> = [
      gauge(
        "ccat_location_fill_ratio",
        "A location's used bytes over its configured capacity (only locations that have one).",
        sized.map((l) => ({ labels: labels(l), value: Number(l.used) / Number(l.capacity) }))
      ),
      gauge(
        "ccat_location_fill_threshold_ratio",
        `The fill above which a location's retention deletes early (its usageThresholdPercent), ${defaultFillThreshold} where it has none; alert when the fill stays above it.`,
        sized.map((l) => ({ labels: labels(l), value: l.threshold === null ? defaultFillThreshold : Number(l.threshold) }))
      ),
      gauge(
        "ccat_stage_oldest_waiting_seconds",
        "How long the oldest work waiting at a lifecycle stage has waited, 0 when none waits.",
        waited
      ),
      gauge(
        "ccat_stage_max_wait_seconds",
        "How long work may wait at a lifecycle stage before it counts as stuck (from the policy).",
        stages.map((stage) => ({ labels: { stage }, value: allowed[stage] }))
      )
    ]
    if (policy !== undefined) {
      // Audits read every location but the scientists' PROCESSING space; tape has its own cycle.
      const audited = locations.filter((l) => l.ltype !== "PROCESSING")
      families.push(
        gauge(
          "ccat_location_audit_cycle_seconds",
          "The audit cycle at a location: every copy is read back at least this often (policy.audit, or the location's own).",
          audited.map((l) => {
            const own = audits.get(l.location)
            const days = l.tech === "tape" ? own?.tapeCycleDays ?? policy.audit.tapeCycleDays : own?.cycleDays ?? policy.audit.cycleDays
            return { labels: labels(l), value: Math.round(days * 86_400) }
          })
        )
      )
    }
    return families
  })
