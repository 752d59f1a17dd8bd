/**
 * The ops-db metrics on a real lifecycle: files filed at the SOURCE and packaged by the real
 * packaging stage, transfer attempts recorded through the checked transitions. The Prometheus
 * text parses strictly after every step, and the series move with the rows.
 */
import { Ids, Repositories, Transitions } from "@ccat/core"
import { assert, describe, it, layer as withLayer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Engine from "../../src/lifecycle/Engine.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Exposition from "../../src/observability/Exposition.js"
import * as Metrics from "../../src/observability/Metrics.js"
import { fileObservation, layer, observatory, policyLayer, syncTopology, tempDir, topologyIn } from "../lifecycle/LifecycleWorld.js"
import { parseLines, parsePrometheus, sumOf, valueOf } from "./Formats.js"

const runPackagingUntil = <E, R>(done: Effect.Effect<boolean, E, R>, timeoutMs = 45_000) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* Engine.runSite("chile", [Packaging.stage], { plannerInterval: "200 millis", pollingIntervalSeconds: 0.5 })
      const deadline = Date.now() + timeoutMs
      while (!(yield* done)) {
        if (Date.now() > deadline) return yield* Effect.dieMessage("packaging did not finish in time")
        yield* Effect.sleep("100 millis")
      }
    })
  )

describe("Metrics", () => {
  it("renders label values and help with the escapes of both formats", () => {
    const families: Array<Exposition.Family> = [{
      name: "ccat_test_odd",
      help: "a \\ backslash\nand a newline",
      type: "gauge",
      samples: [
        { name: "ccat_test_odd", labels: { path: 'a "quoted" \\ value\nnext', "bad-name": "x, y=z" }, value: 1.5 },
        { name: "ccat_test_odd", labels: { path: "" }, value: NaN },
        { name: "ccat_test_odd", labels: { path: "inf" }, value: Infinity }
      ]
    }]
    const text = Exposition.prometheus(families)
    const parsed = parsePrometheus(text)
    assert.strictEqual(valueOf(parsed, "ccat_test_odd", { path: 'a "quoted" \\ value\nnext', bad_name: "x, y=z" }), 1.5)
    assert.isTrue(Number.isNaN(valueOf(parsed, "ccat_test_odd", { path: "" })!))
    assert.strictEqual(valueOf(parsed, "ccat_test_odd", { path: "inf" }), Infinity)
    const lines = parseLines(Exposition.lineProtocol(families, 1n, { host: "a b" }))
    // NaN and infinities cannot be written in line protocol; the empty tag is left out.
    assert.strictEqual(lines.length, 1)
    // The backslash before a space cannot be carried by line protocol (InfluxDB keeps `\\` as two), so it is left out.
    assert.deepStrictEqual(lines[0]!.tags, { host: "a b", path: 'a "quoted"  value next', bad_name: "x, y=z" })
    assert.deepStrictEqual(lines[0]!.fields, { value: 1.5 })
  })

  withLayer(layer, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.scoped("series follow files, packages, copies, queues and transfer attempts", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const collector = yield* Metrics.make({ cacheFor: 0 })
        const scrape = Effect.map(collector.prometheus, parsePrometheus)

        const empty = yield* scrape
        assert.strictEqual(valueOf(empty, "ccat_ops_db_up"), 1)
        for (const state of ["filed", "packaged", "corrupt", "missing"]) {
          assert.strictEqual(valueOf(empty, "ccat_raw_data_files", { state }), 0)
        }
        assert.strictEqual(valueOf(empty, "ccat_location_used_bytes", { location: "chile-buffer" }), 0)
        assert.strictEqual(valueOf(empty, "ccat_location_available", { location: "cologne-archive", operation: "write" }), 1)

        const obs = yield* observatory
        const { eou, files } = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 200_000 },
          { path: "det/b.fits", bytes: 300_000 },
          { path: "hk/h.dat", bytes: 1000, module: 1 }
        ])
        const total = files.reduce((a, f) => a + f.sizeBytes, 0)
        const filed = yield* scrape
        assert.strictEqual(valueOf(filed, "ccat_raw_data_files", { state: "filed" }), 3)
        assert.strictEqual(valueOf(filed, "ccat_raw_data_file_bytes", { state: "filed" }), total)

        const packaged = sql<
          { n: number }
        >`select count(*)::int as n from raw_data_file where executed_obs_unit_id = ${eou.id} and state = 'packaged'`
        yield* runPackagingUntil(Effect.map(packaged, (r) => r[0]!.n === files.length)).pipe(Effect.provide(policyLayer(topology)))
        const after = yield* scrape
        assert.strictEqual(valueOf(after, "ccat_raw_data_files", { state: "filed" }), 0)
        assert.strictEqual(valueOf(after, "ccat_raw_data_files", { state: "packaged" }), 3)
        assert.strictEqual(valueOf(after, "ccat_raw_data_packages", { status: "in_progress" }), 2)
        assert.isAbove(valueOf(after, "ccat_raw_data_package_bytes", { status: "in_progress" })!, total)
        assert.strictEqual(valueOf(after, "ccat_physical_copies", { location: "chile-source", kind: "file", status: "PRESENT" }), 3)
        assert.strictEqual(valueOf(after, "ccat_physical_copies", { location: "chile-buffer", kind: "package", status: "PRESENT" }), 2)
        const bufferBytes = valueOf(after, "ccat_location_used_bytes", {
          location: "chile-buffer",
          site: "chile",
          type: "BUFFER",
          technology: "disk"
        })!
        assert.strictEqual(bufferBytes, valueOf(after, "ccat_raw_data_package_bytes", { status: "in_progress" }))
        // The packaging jobs went through pg-boss's chile.package queue.
        assert.isAbove(sumOf(after, "ccat_queue_jobs", { queue: "chile.package" }), 0)
        assert.strictEqual(valueOf(after, "ccat_open_package_age_seconds_count", { status: "in_progress" }), 2)

        // Two attempts of one package from chile to cologne: a retryable failure, then a delivery.
        const [pkg] = yield* sql<{ id: string; sizeBytes: number }>`
          select id, size_bytes from raw_data_package where executed_obs_unit_id = ${eou.id} order by size_bytes desc limit 1`
        const loc = (name: string) =>
          Effect.map(sql<{ id: string }>`select id from data_location where name = ${name}`, (r) => r[0]!.id as Ids.DataLocationId)
        const from = yield* loc("chile-buffer")
        const to = yield* loc("cologne-buffer")
        const attempt = (n: number, previous: Ids.DataTransferId | null) =>
          Repositories.dataTransfers.insert({
            dataTransferPackageId: null,
            rawDataPackageId: pkg!.id as Ids.RawDataPackageId,
            routeId: null,
            fromLocationId: from,
            toLocationId: to,
            previousAttemptId: previous,
            attempt: n,
            adapter: "local" as never
          } as never)
        const step = (id: Ids.DataTransferId, from: string, to: string, set?: Record<string, unknown>) =>
          Transitions.transition({ entity: "DataTransfer", id, from, to, ...(set ? { set } : {}) } as never)
        const first = yield* attempt(1, null)
        yield* step(first.id, "pending", "scheduled")
        yield* step(first.id, "scheduled", "in_progress", { startedAt: new Date() })
        yield* step(first.id, "in_progress", "failed", {
          errorReason: "Timeout",
          errorMessage: "no answer",
          retryable: true,
          finishedAt: new Date()
        })
        const moving = yield* scrape
        const hop = { from: "chile", to: "cologne", adapter: "local" }
        assert.strictEqual(valueOf(moving, "ccat_transfer_failures_total", { ...hop, reason: "Timeout" }), 1)
        assert.strictEqual(valueOf(moving, "ccat_transfer_attempts", { ...hop, status: "failed" }), 1)
        assert.strictEqual(valueOf(moving, "ccat_transfer_bytes_total", hop), 0)

        const second = yield* attempt(2, first.id)
        yield* step(second.id, "pending", "scheduled")
        yield* step(second.id, "scheduled", "in_progress", { startedAt: new Date(Date.now() - 4000) })
        yield* step(second.id, "in_progress", "completed", {
          bytesTransferred: pkg!.sizeBytes,
          durationMs: 4000,
          throughputBytesPerSecond: pkg!.sizeBytes / 4,
          finishedAt: new Date()
        })
        const moved = yield* scrape
        assert.strictEqual(valueOf(moved, "ccat_transfer_bytes_total", hop), pkg!.sizeBytes)
        assert.strictEqual(valueOf(moved, "ccat_transfer_retries_total", hop), 1)
        assert.strictEqual(valueOf(moved, "ccat_transfer_attempts", { ...hop, status: "completed" }), 1)
        assert.strictEqual(valueOf(moved, "ccat_transfer_duration_seconds_count", hop), 1)
        assert.strictEqual(valueOf(moved, "ccat_transfer_duration_seconds_bucket", { ...hop, le: "1" }), 0)
        assert.strictEqual(valueOf(moved, "ccat_transfer_duration_seconds_bucket", { ...hop, le: "10" }), 1)
        assert.closeTo(valueOf(moved, "ccat_transfer_last_throughput_bytes_per_second", hop)!, pkg!.sizeBytes / 4, 1e-6)
        assert.closeTo(valueOf(moved, "ccat_transfer_average_throughput_bytes_per_second", hop)!, pkg!.sizeBytes / 4, 1e-6)

        // The same figures as line protocol, each line valid.
        const lines = parseLines(yield* collector.lineProtocol)
        const bytesLine = lines.find((l) => l.measurement === "ccat_transfer_bytes_total" && l.tags.from === "chile")
        assert.strictEqual(bytesLine?.fields.value, pkg!.sizeBytes)
        const histogramLine = lines.find((l) => l.measurement === "ccat_transfer_duration_seconds" && l.tags.from === "chile")
        assert.deepInclude(histogramLine?.fields, { count: 1, sum: 4, "le_+Inf": 1, le_10: 1 })
      }))
  })
})
