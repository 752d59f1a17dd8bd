/**
 * `/status` and `/metrics` at a million files: the snapshot and the metrics' ops-db figures
 * read maintained counts and live rows only. Proven with the plans of the very statements they
 * send (recorded, then `EXPLAIN ANALYZE`d): no sequential scan over the catalog's big tables,
 * and a bound on the rows each statement touches far below the catalog (the live tail is about
 * 19,000 files); and their figures equal exact counts of the rows. No timing is asserted.
 * `CCAT_SCALE_FILES` changes the size (default 10^6).
 */
import { assert, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { ApiSecurity, Ids } from "@ccat/core"
import { snapshot } from "../../src/http/StatusSnapshot.js"
import * as OpsDbFigures from "../../src/observability/internal/OpsDbFigures.js"
import * as IntegrityFamilies from "../../src/observability/internal/IntegrityFamilies.js"
import * as AlertFigures from "../../src/observability/internal/AlertFigures.js"
import * as CircuitFigures from "../../src/observability/internal/CircuitFigures.js"
import * as RepairFigures from "../../src/observability/internal/RepairFigures.js"
import * as IntegrityFigures from "../../src/lifecycle/IntegrityFigures.js"
import { Topology } from "@ccat/core"
import * as CatalogDatabase from "./CatalogDatabase.js"
import * as Plans from "./Plans.js"

const files = Number(process.env.CCAT_SCALE_FILES ?? 1_000_000)
// The live tail is ~19,000 files; a statement that read the catalog would touch at least `files` rows.
const maxTouched = 60_000
// The integrity figures read maintained counts, one day's verifications and the packages below
// target (a few in the catalog): nothing there grows with the catalog or its live tail.
const integrityTouched = 2_000

const admin: ApiSecurity.Principal = {
  accountId: "00000000-0000-4000-8000-000000000000" as Ids.AccountId,
  name: "ops",
  role: "admin",
  instrumentIds: [],
  programIds: []
}

// a copy of the run's catalog template: the other scale suites share its one load
const catalog = CatalogDatabase.layer({ files, fileEvents: false })

/** Exact counts per state, straight from the rows (a full pass: the reference, run once). */
const exact = (table: string, column: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql.unsafe<{ state: string; n: number }>(`select ${column}::text as state, count(*)::int as n from ${table} group by 1`)
  ).pipe(Effect.map((rows) => Object.fromEntries(rows.map((r) => [r.state, r.n]))))

/** With `CCAT_SCALE_PRINT=1`, each statement's rows touched and executor time, slowest first (to read, not to assert). */
const print = (title: string, plans: ReadonlyArray<Plans.PlanSummary>) =>
  Effect.sync(() => {
    if (process.env.CCAT_SCALE_PRINT !== "1") return
    console.log(`${title}: ${plans.length} statements`)
    for (const p of [...plans].sort((a, b) => b.ms - a.ms)) {
      console.log(`  ${p.ms.toFixed(1).padStart(8)} ms ${String(p.touched).padStart(8)} rows  ${p.sql}`)
    }
  })

const nonZero = (r: Readonly<Record<string, number>>) => Object.fromEntries(Object.entries(r).filter(([, n]) => n !== 0))

it.layer(catalog, { timeout: 600_000 })(`status and metrics at ${files} files`, (it) => {
  it.effect("the snapshot's figures are exact, and its statements read live rows and counts only", () =>
    Effect.gen(function* () {
      const { value: s, recorded } = yield* Plans.record(snapshot(admin, 50))
      assert.deepStrictEqual(nonZero(s.counts.files), yield* exact("raw_data_file", "state"))
      assert.deepStrictEqual(nonZero(s.counts.packages), yield* exact("raw_data_package", "status"))
      assert.deepStrictEqual(nonZero(s.counts.bundles), yield* exact("data_transfer_package", "status"))
      assert.deepStrictEqual(nonZero(s.counts.transfers), yield* exact("data_transfer", "status"))
      assert.deepStrictEqual(nonZero(s.counts.copies), yield* exact("physical_copy", "status"))
      assert.deepStrictEqual(nonZero(s.counts.stagingRequests), yield* exact("staging_request", "status"))
      const sql = yield* SqlClient.SqlClient
      const [waiting] = yield* sql<
        { n: number }
      >`select count(*)::int as n from raw_data_file where state = 'filed' and raw_data_package_id is null`
      assert.strictEqual(s.stages.waitingToPackage.count, waiting.n)
      assert.isAbove(s.stages.waitingToPackage.count, 0)
      assert.isAbove(s.stages.waitingToBundle.count, 0)
      assert.isAbove(s.stages.waitingToArchive.count, 0)
      assert.isAbove(s.stages.waitingToDelete.count, 0)
      const [used] = yield* sql<{ bytes: number }>`
        select coalesce(sum(size_bytes), 0)::float8 as bytes from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-archive' and c.status <> 'DELETED'`
      assert.strictEqual(s.locations.find((l) => l.name === "cologne-archive")?.usedBytes, used.bytes)
      assert.isAbove(s.failed.length, 0)

      const plans = yield* Plans.explain(recorded)
      yield* print("status", plans)
      assert.isAbove(plans.length, 8)
      assert.deepStrictEqual(Plans.breaches(plans, Plans.bigTables, maxTouched), [])
    }))

  it.effect("the metrics' ops-db figures are exact, and their statements read live rows and counts only", () =>
    Effect.gen(function* () {
      const { value: families, recorded } = yield* Plans.record(
        Effect.map(
          Effect.all([
            OpsDbFigures.collect,
            IntegrityFamilies.collect,
            CircuitFigures.collect(3),
            AlertFigures.collect(Topology.PolicyConfig.make({}), new Map())
          ]),
          (parts) => parts.flat()
        )
      )
      const family = (name: string) => families.find((f) => f.name === name)!
      const byLabel = (name: string, label: string) =>
        nonZero(Object.fromEntries(family(name).samples.map((x) => [x.labels[label]!, x.value])))
      assert.deepStrictEqual(byLabel("ccat_raw_data_files", "state"), yield* exact("raw_data_file", "state"))
      assert.deepStrictEqual(byLabel("ccat_raw_data_packages", "status"), yield* exact("raw_data_package", "status"))
      const sql = yield* SqlClient.SqlClient
      const [archived] = yield* sql<{ n: number }>`select count(*)::float8 as n from raw_data_package where status = 'completed'`
      const count = family("ccat_package_archive_duration_seconds").samples.find((x) =>
        x.name === "ccat_package_archive_duration_seconds_count"
      )
      assert.strictEqual(count?.value, archived.n)
      const [attempts] = yield* sql<
        { n: number }
      >`select count(*)::float8 as n from data_transfer where status = 'completed' and duration_ms is not null`
      const durations = family("ccat_transfer_duration_seconds").samples.filter((x) => x.name === "ccat_transfer_duration_seconds_count")
      assert.strictEqual(durations.reduce((a, x) => a + x.value, 0), attempts.n)
      assert.isAbove(family("ccat_transfer_last_throughput_bytes_per_second").samples.length, 0)
      // The alert rules' figures: every stage timed, every location with a capacity filled.
      assert.strictEqual(family("ccat_stage_oldest_waiting_seconds").samples.length, AlertFigures.stages.length)
      assert.isAbove(family("ccat_stage_oldest_waiting_seconds").samples.find((x) => x.labels.stage === "package")?.value ?? 0, 0)
      assert.isAbove(family("ccat_location_circuit_open_seconds").samples.length, 0)

      const plans = yield* Plans.explain(recorded)
      yield* print("metrics", plans)
      assert.isAbove(plans.length, 8)
      assert.deepStrictEqual(Plans.breaches(plans, Plans.bigTables, maxTouched), [])
    }))

  it.effect("the integrity view's and the repair gauge's figures equal fresh counts, and their statements read what changes only", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // One more archive copy found bad, so a package is below target at every size (through the triggers).
      yield* sql`update physical_copy set status = 'CORRUPT' where id = (select c.id from physical_copy c
        join data_location l on l.id = c.data_location_id and l.type = 'LONG_TERM_ARCHIVE' where c.status = 'PRESENT' order by c.id limit 1)`
      const [{ now }] = yield* sql<{ now: Date }>`select now() as now`
      const { value, recorded } = yield* Plans.record(
        Effect.all({
          locations: IntegrityFigures.locations(now, undefined),
          below: IntegrityFigures.belowTarget(1, 1000),
          gauge: RepairFigures.collect(1)
        })
      )
      // The reference: every live copy and every completed package counted from the rows.
      const fresh = yield* sql<{ id: string; copies: number; audited: number }>`
        select l.id, count(c.id)::int as copies,
          count(c.id) filter (where c.verified_at >= ${now}::timestamptz - make_interval(days => ${IntegrityFigures.defaultAuditCycleDays}))::int
            as audited
        from data_location l left join physical_copy c on c.data_location_id = l.id and c.status <> 'DELETED' group by l.id`
      assert.deepStrictEqual(
        Object.fromEntries(value.locations.map((l) => [l.id, [l.copies, l.audited]])),
        Object.fromEntries(fresh.map((l) => [l.id, [l.copies, l.audited]]))
      )
      assert.isAbove(value.locations.reduce((n, l) => n + l.audited, 0), 0)
      const below = yield* sql<{ id: string; good: number }>`
        select p.id, count(c.id)::int as good from raw_data_package p
        left join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT' and c.verified_at is not null
          and c.checksum = p.checksum and c.data_location_id in (select id from data_location where type = 'LONG_TERM_ARCHIVE')
        where p.status = 'completed' group by p.id having count(c.id) < 1 order by p.id`
      assert.isAbove(below.length, 0)
      assert.strictEqual(value.below.total, below.length)
      assert.deepStrictEqual(value.below.items.map((b) => [b.id, b.goodCopies]), below.map((b) => [b.id, b.good]))
      const gauge = value.gauge.find((f) => f.name === "ccat_packages_below_copy_target")
      assert.strictEqual(gauge?.samples[0]?.value, below.length)

      const plans = yield* Plans.explain(recorded)
      yield* print("integrity", plans)
      assert.isAbove(plans.length, 3)
      assert.deepStrictEqual(Plans.breaches(plans, Plans.bigTables, integrityTouched), [])
    }))
})
