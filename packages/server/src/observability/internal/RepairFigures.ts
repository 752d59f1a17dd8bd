/**
 * The repair figures of the metrics, from the ops-db like the others: copies repaired (the
 * `repaired` events of PhysicalCopies, and those of months the history retention dropped, so a
 * counter) and ARCHIVED packages below the policy's archive copy target now (a gauge, from the
 * maintained good archive copies per package, as the integrity view counts them). The
 * target is the running configuration's; a process that has none (no lifecycle policy) reports
 * no gauge rather than one measured against a guess.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as IntegrityFigures from "../../lifecycle/IntegrityFigures.js"
import type { Family } from "../Exposition.js"
import { counter, gauge } from "./OpsDbFigures.js"

/** The repair families; `required` is the policy's `archiveCopies` when known. */
export const collect = (required: number | undefined): Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // From the repaired events (a partial index holds only them), then onto every archive, zero or not.
    const repaired = yield* sql<{ site: string; location: string; ltype: string; tech: string; n: number }>`
      select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech, coalesce(r.n, 0)::float8 as n
      from data_location l join site s on s.id = l.site_id
      left join (
        select t.data_location_id, sum(t.n) as n from (
          select c.data_location_id, count(*) as n
          from event_log e join physical_copy c on c.id = e.entity_id
          where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired'
          group by c.data_location_id
          union all
          -- the repairs of event log months the history retention dropped
          select data_location_id, n from event_log_retired_repaired) t
        group by t.data_location_id) r on r.data_location_id = l.id
      where l.type = 'LONG_TERM_ARCHIVE'
      order by 1, 2`
    const families: Array<Family> = [
      counter(
        "ccat_copies_repaired_total",
        "Archive copies found CORRUPT or MISSING and replaced by a verified copy, per location of the bad copy.",
        repaired.map((r) => ({ labels: { site: r.site, location: r.location, type: r.ltype, technology: r.tech }, value: Number(r.n) }))
      )
    ]
    if (required !== undefined) {
      families.push(
        gauge("ccat_packages_below_copy_target", "ARCHIVED packages with fewer good archive copies than the policy's archiveCopies now.", [{
          labels: {},
          value: yield* IntegrityFigures.belowTargetCount(required)
        }])
      )
    }
    return families
  })
