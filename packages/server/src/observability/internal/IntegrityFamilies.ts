/**
 * The integrity gauges of the metrics, per location: copies found CORRUPT or MISSING, dark
 * objects not yet resolved, the audit lag and the copies never verified. Read with the same
 * queries as the integrity view (`lifecycle/IntegrityFigures.ts`), so a dashboard and
 * `GET /integrity` never disagree; none of these depends on the audit cycle, which this process
 * may not know. Every location is reported, with 0 when it has nothing to report, except the lag
 * of a location without a verified PRESENT or STAGED copy (no sample rather than a made-up one).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as IntegrityFigures from "../../lifecycle/IntegrityFigures.js"
import type { Family } from "../Exposition.js"

const family = (name: string, help: string, samples: ReadonlyArray<{ labels: Readonly<Record<string, string>>; value: number }>): Family => ({
  name,
  help,
  type: "gauge",
  samples: samples.map((s) => ({ name, ...s }))
})

/** The integrity families, from the ops-db now. */
export const collect: Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [{ now }] = yield* sql<{ now: Date }>`select now() as now`
  const rows = yield* IntegrityFigures.locations(now, undefined)
  const labels = (l: (typeof rows)[number]) => ({ site: l.siteName, location: l.name, type: l.type, technology: l.technology })
  return [
    family("ccat_location_corrupt_copies", "Copies at a location in status CORRUPT: their bytes were read and did not match the checksum.",
      rows.map((l) => ({ labels: labels(l), value: l.corrupt }))),
    family("ccat_location_missing_copies", "Copies at a location in status MISSING: their object was not found in storage.",
      rows.map((l) => ({ labels: labels(l), value: l.missing }))),
    family("ccat_location_dark_objects", "Objects in a location's storage that no copy accounts for (unresolved dark objects).",
      rows.map((l) => ({ labels: labels(l), value: l.dark }))),
    family("ccat_location_audit_lag_seconds", "Seconds since the oldest verification of a PRESENT or STAGED copy at a location (copies never verified are counted apart).",
      rows.filter((l) => l.auditLagSeconds !== null).map((l) => ({ labels: labels(l), value: l.auditLagSeconds ?? 0 }))),
    family("ccat_location_unverified_copies", "PRESENT and STAGED copies at a location that were never verified (their audit lag is \"never\").",
      rows.map((l) => ({ labels: labels(l), value: l.unverifiedCopies })))
  ]
})
