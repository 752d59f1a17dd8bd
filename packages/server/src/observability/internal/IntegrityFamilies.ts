/**
 * The integrity gauges of the metrics, per location: copies found CORRUPT or MISSING, dark
 * objects not yet resolved, the audit lag and the copies never verified. The same definitions
 * as the integrity view (`lifecycle/IntegrityFigures.ts`), so a dashboard and `GET /integrity`
 * never agree less than exactly, but only the index ranges these figures need: the view also
 * counts every live copy of a location, which grows with the archive, and none of these does.
 * None depends on the audit cycle, which this process may not know. Every location is
 * reported, with 0 when it has nothing to report, except the lag of a location without a
 * verified PRESENT or STAGED copy (no sample rather than a made-up one).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Family } from "../Exposition.js"

const family = (
  name: string,
  help: string,
  samples: ReadonlyArray<{ labels: Readonly<Record<string, string>>; value: number }>
): Family => ({
  name,
  help,
  type: "gauge",
  samples: samples.map((s) => ({ name, ...s }))
})

/** The integrity families, from the ops-db now. */
export const collect: Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Each subquery stays in one location's range of an index (physical_copy_integrity,
  // dark_object_live): a descent for the oldest verification, ranges of the bad and the unverified.
  const rows = yield* sql<{
    siteName: string
    name: string
    type: string
    technology: string
    auditLagSeconds: number | null
    unverifiedCopies: number
    corrupt: number
    missing: number
    dark: number
  }>`
    select s.name as site_name, l.name, l.type::text as type, l.technology::text as technology,
      (select case when o.v is null then null else greatest(0, extract(epoch from now() - o.v)) end from (select least(
        (select min(c.verified_at) from physical_copy c where c.data_location_id = l.id and c.status = 'PRESENT' and c.status <> 'DELETED'),
        (select min(c.verified_at) from physical_copy c where c.data_location_id = l.id and c.status = 'STAGED' and c.status <> 'DELETED')) as v) o)::float8
        as audit_lag_seconds,
      (select count(*) from physical_copy c where c.data_location_id = l.id and c.status in ('PRESENT', 'STAGED')
        and c.status <> 'DELETED' and c.verified_at is null)::int as unverified_copies,
      (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'CORRUPT' and c.status <> 'DELETED')::int as corrupt,
      (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'MISSING' and c.status <> 'DELETED')::int as missing,
      (select count(*) from dark_object d where d.data_location_id = l.id and d.resolved_at is null)::int as dark
    from data_location l join site s on s.id = l.site_id
    order by s.name, l.priority, l.name`
  const labels = (l: (typeof rows)[number]) => ({ site: l.siteName, location: l.name, type: l.type, technology: l.technology })
  return [
    family(
      "ccat_location_corrupt_copies",
      "Copies at a location in status CORRUPT: their bytes were read and did not match the checksum.",
      rows.map((l) => ({ labels: labels(l), value: l.corrupt }))
    ),
    family(
      "ccat_location_missing_copies",
      "Copies at a location in status MISSING: their object was not found in storage.",
      rows.map((l) => ({ labels: labels(l), value: l.missing }))
    ),
    family(
      "ccat_location_dark_objects",
      "Objects in a location's storage that no copy accounts for (unresolved dark objects).",
      rows.map((l) => ({ labels: labels(l), value: l.dark }))
    ),
    family(
      "ccat_location_audit_lag_seconds",
      "Seconds since the oldest verification of a PRESENT or STAGED copy at a location (copies never verified are counted apart).",
      rows.filter((l) => l.auditLagSeconds !== null).map((l) => ({ labels: labels(l), value: l.auditLagSeconds ?? 0 }))
    ),
    family(
      "ccat_location_unverified_copies",
      'PRESENT and STAGED copies at a location that were never verified (their audit lag is "never").',
      rows.map((l) => ({ labels: labels(l), value: l.unverifiedCopies }))
    )
  ]
})
