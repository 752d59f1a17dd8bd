/**
 * The ops-db schema, as `@effect/sql` migrations. They ship inside the bundle as a record
 * (`Migrator.fromRecord`) because a built package carries no migrations folder (STYLE §1).
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import init from "./internal/migrations/0001_init.js"
import executedObsUnitEvents from "./internal/migrations/0002_executed_obs_unit_events.js"
import retentionDeleteConcurrency from "./internal/migrations/0003_retention_delete_concurrency.js"
import copyIntegrity from "./internal/migrations/0004_copy_integrity.js"
import sourcePathOwner from "./internal/migrations/0005_source_path_owner.js"
import inventory from "./internal/migrations/0006_inventory.js"
import audit from "./internal/migrations/0007_audit.js"
import integrityIndexes from "./internal/migrations/0008_integrity_indexes.js"
import idempotencyKeys from "./internal/migrations/0009_idempotency_keys.js"
import eventOnBehalfOf from "./internal/migrations/0010_event_on_behalf_of.js"
import stateCounts from "./internal/migrations/0012_state_counts.js"
import listIndexes from "./internal/migrations/0013_list_indexes.js"
import accessEvents from "./internal/migrations/0015_access_events.js"
import alertIncidents from "./internal/migrations/0016_alert_incidents.js"
import topologyEvents from "./internal/migrations/0017_topology_events.js"
import historyPartitions from "./internal/migrations/0018_history_partitions.js"
import observationalHierarchy from "./internal/migrations/0019_observational_hierarchy.js"
import obscore from "./internal/migrations/0020_obscore.js"
import openTechnologies from "./internal/migrations/0021_open_technologies.js"
import memberOffsets from "./internal/migrations/0023_member_offsets.js"
import dataProducts from "./internal/migrations/0024_data_products.js"
import stagingRelease from "./internal/migrations/0025_staging_release.js"
import dataProductList from "./internal/migrations/0026_data_product_list.js"
import packageArchivedAt from "./internal/migrations/0027_package_archived_at.js"
import fastDomainChecks from "./internal/migrations/0028_fast_domain_checks.js"
import integrityCounts from "./internal/migrations/0029_integrity_counts.js"
import sourcePosition from "./internal/migrations/0030_source_position.js"
import transferLocationPages from "./internal/migrations/0031_transfer_location_pages.js"
import plannerRounds from "./internal/migrations/0032_planner_rounds.js"
import cleanupSweep from "./internal/migrations/0033_cleanup_sweep.js"
import packageChecksumChanges from "./internal/migrations/0034_package_checksum_changes.js"

/** Every migration, keyed `NNNN_name`, applied in order. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_init": init,
  "0002_executed_obs_unit_events": executedObsUnitEvents,
  "0003_retention_delete_concurrency": retentionDeleteConcurrency,
  "0004_copy_integrity": copyIntegrity,
  "0005_source_path_owner": sourcePathOwner,
  "0006_inventory": inventory,
  "0007_audit": audit,
  "0008_integrity_indexes": integrityIndexes,
  "0009_idempotency_keys": idempotencyKeys,
  "0010_event_on_behalf_of": eventOnBehalfOf,
  "0012_state_counts": stateCounts,
  "0013_list_indexes": listIndexes,
  "0015_access_events": accessEvents,
  "0016_alert_incidents": alertIncidents,
  "0017_topology_events": topologyEvents,
  "0018_history_partitions": historyPartitions,
  "0019_observational_hierarchy": observationalHierarchy,
  "0020_obscore": obscore,
  "0021_open_technologies": openTechnologies,
  "0023_member_offsets": memberOffsets,
  "0024_data_products": dataProducts,
  "0025_staging_release": stagingRelease,
  "0026_data_product_list": dataProductList,
  "0027_package_archived_at": packageArchivedAt,
  "0028_fast_domain_checks": fastDomainChecks,
  "0029_integrity_counts": integrityCounts,
  "0030_source_position": sourcePosition,
  "0031_transfer_location_pages": transferLocationPages,
  "0032_planner_rounds": plannerRounds,
  "0033_cleanup_sweep": cleanupSweep,
  "0034_package_checksum_changes": packageChecksumChanges
}

/** The table in which applied migrations are recorded. */
export const table = "ccat_migrations"

const names = Object.keys(migrations).sort()

/**
 * The newest applied migration's id (0 on a new ops-db), in one statement: a process starting far
 * from the ops-db (a site 220 ms away) pays each statement in full, and a migrator run per
 * migration on an up-to-date ops-db costs six. The table is read through `query_to_xml` so that a
 * missing one (never migrated) is not an error, which would abort a surrounding transaction.
 */
const latestApplied = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe<{ latest: number }>(
    `select case when to_regclass('${table}') is null then 0 else coalesce(
       (xpath('/row/m/text()', query_to_xml('select max(migration_id) as m from ${table}', false, true, '')))[1]::text::int, 0) end as latest`
  ).withoutTransform).pipe(Effect.map((rows) => rows[0]?.latest ?? 0))

/**
 * Applies the migrations not yet applied, each in a transaction of its own, oldest first;
 * returns what it applied. One transaction per migration (the migrator would put all pending
 * ones in one) lets a later migration use an enum value an earlier one added, which PostgreSQL
 * refuses inside the transaction that added it; a failing migration still changes nothing of its
 * own, and the ones before it stay applied.
 */
export const run = Effect.gen(function* () {
  const applied: Array<readonly [id: number, name: string]> = []
  const latest = yield* latestApplied
  // the migrator applies only ids above the newest applied one: the runs before that would apply nothing
  const first = names.findIndex((name) => Number(name.slice(0, 4)) > latest)
  for (let upTo = first < 0 ? names.length + 1 : first + 1; upTo <= names.length; upTo++) {
    const loader = Migrator.fromRecord(Object.fromEntries(names.slice(0, upTo).map((name) => [name, migrations[name]!])))
    applied.push(...(yield* Migrator.make({})({ loader, table })))
  }
  return applied as ReadonlyArray<readonly [id: number, name: string]>
})
