/**
 * The Influx push against a real InfluxDB 1.x (Debian's influxd, authentication on): the
 * in-process server's pusher writes while the lifecycle files, packages, transfers and archives
 * an observation; InfluxQL then reads back every series and field, every field is a float (one
 * type across pushes), and every query of `docs/grafana-dashboard-influx.json` finds data.
 */
import { Ids, Repositories, Topology, Transitions } from "@ccat/core"
import { assert, layer as withLayer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as InfluxPush from "../../src/observability/InfluxPush.js"
import * as Metrics from "../../src/observability/Metrics.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Harness from "../ApiHarness.js"
import * as World from "../lifecycle/LifecycleWorld.js"
import { repoRoot } from "../support.js"
import { host, pushesSince, pusherUrl, query, waitFor } from "./InfluxQueries.js"
import * as RealInflux from "./RealInflux.js"

const dashboardFile = path.join(repoRoot, "docs/grafana-dashboard-influx.json")

/** The demo topology with a capacity at the archive, so the fill panel has a figure. */
const topologyWithCapacity = (dir: string) => {
  const demo = World.topologyIn(dir)
  const decoded = Topology.decode({
    sites: demo.sites.map((s) => ({
      name: s.name,
      shortName: s.shortName,
      role: s.role,
      locations: s.locations.map((l) => ({
        name: l.name,
        type: l.type,
        technology: l.technology,
        driver: l.driver,
        priority: l.priority,
        retention: l.retention,
        ...(l.name === "cologne-archive" ? { capacityBytes: "1 GB" } : {})
      }))
    })),
    routes: demo.routes.map((r) => ({ from: r.from, to: r.to, adapter: r.adapter })),
    policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds" }
  })
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

/** The latest `value` of a measurement under some tags, or undefined. */
const lastValue = (measurement: string, where = "") =>
  Effect.map(
    query(`SELECT last("value") FROM "${measurement}" WHERE "host" = '${host.replace(/'/g, "\\'")}'${where ? ` AND ${where}` : ""}`),
    (series) => series[0]?.values[0]?.[1] as number | undefined
  )

/** The lifecycle's transfer durations from Chile, as last pushed. */
const transferDurations = query(`SELECT last("count") FROM "ccat_transfer_duration_seconds" WHERE "from" = 'chile'`)

/** The start of the 1 s interval after the newest point of the given series. */
const nextInterval = (series: ReadonlyArray<RealInflux.Series>) =>
  (Math.floor(Math.max(...series.map((s) => Number(s.values[0]![0]))) / 1000) + 1) * 1000

const escapeRegex = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&")

/** A dashboard query as Grafana would send it for the given range. */
const substitute = (q: string, fromMs: number, toMs: number) =>
  q.replaceAll("$timeFilter", `time >= ${fromMs}ms and time <= ${toMs}ms`).replaceAll("$__interval", "1s").replaceAll(
    "$host",
    escapeRegex(host)
  )

withLayer(Layer.mergeAll(Harness.layer(), World.layer, RealInflux.layer), { timeout: 150_000, excludeTestServices: true })(
  "InfluxDB for real: the lifecycle's series",
  (it) => {
    // bounded in minutes: a whole lifecycle runs first, and on a loaded machine that is slow
    it.scoped("the lifecycle's series reach InfluxDB and every dashboard query finds data", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const influx = yield* RealInflux.RealInflux
        const dir = yield* World.tempDir
        const topology = topologyWithCapacity(dir)
        yield* World.syncTopology(topology)
        const startedMs = Date.now()
        yield* Layer.build(
          InfluxPush.layer({
            url: pusherUrl(influx),
            username: influx.writer.name,
            password: Redacted.make(influx.writer.password),
            interval: "300 millis",
            timeout: "5 seconds",
            maxBackoff: "1 second",
            tags: { host }
          }).pipe(Layer.provide(Metrics.layer({ cacheFor: "100 millis" })))
        )
        yield* waitFor("a first push", Effect.map(pushesSince(startedMs - 1000), (n) => n >= 1))

        // The lifecycle: an observation filed, packaged, moved from Chile to Cologne and archived.
        const obs = yield* World.observatory
        const { files } = yield* World.fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 400_000 },
          { path: "det/b.fits", bytes: 700_000 },
          { path: "hk/h.dat", bytes: 2000, module: 1 }
        ])
        const archived = Effect.map(
          sql<{ open: number; done: number }>`
          select count(*) filter (where status <> 'completed')::int as open, count(*) filter (where status = 'completed')::int as done
          from raw_data_package`,
          ([r]) => r!.open === 0 && r!.done > 0
        )
        yield* World.runUntil([["chile", Stages.all], ["cologne", Stages.all]], archived, 90_000).pipe(
          Effect.provide(World.policyLayer(topology))
        )
        const [{ packages }] = yield* sql<{ packages: number }>`select count(*)::int as packages from raw_data_package`

        // The lifecycle's transfers are in InfluxDB, and the retry below completes in a later 1 s
        // interval, so the dashboard's per-interval mean attempt duration has a difference to show.
        yield* waitFor("the lifecycle's transfer durations in InfluxDB", Effect.map(transferDurations, (s) => s.length > 0))
        const transfersPushed = yield* transferDurations
        yield* waitFor("the next 1 s interval", Effect.sync(() => Date.now() >= nextInterval(transfersPushed)))

        // With the workers stopped: a failed attempt and its retry on the hop, one in flight, an operator pausing deletions.
        const [pkg] = yield* sql<
          { id: string; sizeBytes: number }
        >`select id, size_bytes from raw_data_package order by size_bytes desc limit 1`
        const loc = (name: string) =>
          Effect.map(sql<{ id: string }>`select id from data_location where name = ${name}`, (r) => r[0]!.id as Ids.DataLocationId)
        const [from, to] = yield* Effect.all([loc("chile-buffer"), loc("cologne-buffer")])
        const insert = (n: number, previous: Ids.DataTransferId | null) =>
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
        const failed = yield* insert(1, null)
        yield* step(failed.id, "pending", "scheduled")
        yield* step(failed.id, "scheduled", "in_progress", { startedAt: new Date() })
        yield* step(failed.id, "in_progress", "failed", {
          errorReason: "Timeout",
          errorMessage: "no answer",
          retryable: true,
          finishedAt: new Date()
        })
        const retry = yield* insert(2, failed.id)
        yield* step(retry.id, "pending", "scheduled")
        yield* step(retry.id, "scheduled", "in_progress", { startedAt: new Date(Date.now() - 2000) })
        yield* step(retry.id, "in_progress", "completed", {
          bytesTransferred: pkg!.sizeBytes,
          durationMs: 2000,
          throughputBytesPerSecond: pkg!.sizeBytes / 2,
          finishedAt: new Date()
        })
        // One more attempt, scheduled and left in flight (no worker runs now to take it).
        const inFlight = yield* insert(1, null)
        yield* step(inFlight.id, "pending", "scheduled")
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const archive = yield* loc("cologne-archive")
        yield* operator.locations.setAvailability({ path: { id: archive }, payload: { deletable: false, reason: "influx test" } }).pipe(
          Effect.orDie
        )
        yield* operator.locations.list({ urlParams: {} }).pipe(Effect.orDie)

        // InfluxDB has caught up with the ops-db, then a few more pushes for the rates.
        yield* waitFor(
          "the end of the run in InfluxDB",
          Effect.gen(function* () {
            const completed = yield* lastValue("ccat_raw_data_packages", `"status" = 'completed'`)
            const failures = yield* lastValue("ccat_transfer_failures_total", `"reason" = 'Timeout'`)
            const paused = yield* lastValue("ccat_location_available", `"location" = 'cologne-archive' AND "operation" = 'delete'`)
            const scheduled = yield* lastValue("ccat_transfer_attempts", `"from" = 'chile' AND "status" = 'scheduled'`)
            return completed === packages && failures === 1 && paused === 0 && scheduled === 1
          })
        )
        // A route asked again in a later 1 s interval than its first request's push, so the
        // dashboard's per-interval difference of its latency has a point to start from.
        const firstListed = yield* query(
          `SELECT last("count") FROM "ccat_http_request_duration_seconds" WHERE "method" = 'GET' AND "route" = '/api/v1/locations'`
        )
        yield* waitFor("the next 1 s interval", Effect.sync(() => Date.now() >= nextInterval(firstListed)))
        yield* operator.locations.list({ urlParams: {} }).pipe(Effect.orDie)
        const caughtUp = Date.now()
        yield* waitFor("four more pushes", Effect.map(pushesSince(caughtUp), (n) => n >= 4))
        const toMs = Date.now() + 1000

        // The figures read back as the ops-db has them, at timestamps of now (precision=ms honoured).
        assert.strictEqual(yield* lastValue("ccat_raw_data_files", `"state" = 'packaged'`), files.length)
        assert.strictEqual(yield* lastValue("ccat_raw_data_files", `"state" = 'filed'`), 0)
        assert.strictEqual(yield* lastValue("ccat_ops_db_up"), 1)
        assert.strictEqual(yield* lastValue("ccat_transfer_retries_total", `"from" = 'chile' AND "to" = 'cologne'`), 1)
        assert.strictEqual(yield* lastValue("ccat_location_capacity_bytes", `"location" = 'cologne-archive'`), 1e9)
        const latest = yield* query(`SELECT last("value") FROM "ccat_ops_db_up"`)
        assert.isBelow(Math.abs(Number(latest[0]!.values[0]![0]) - Date.now()), 60_000)
        const hosts = yield* query(`SHOW TAG VALUES FROM "ccat_ops_db_up" WITH KEY = "host"`)
        assert.deepStrictEqual(hosts[0]!.values.map((v) => v[1]), [host])
        const duration = yield* query(
          `SELECT last("count"), last("sum"), last("le_10"), last("le_+Inf") FROM "ccat_transfer_duration_seconds" WHERE "from" = 'chile' GROUP BY "adapter"`
        )
        assert.isAtLeast(duration.length, 1)
        for (const s of duration) assert.strictEqual(s.values[0]![1], s.values[0]![4])

        // Every field is a float, so no push can ever conflict with an earlier one.
        const fieldKeys = yield* query("SHOW FIELD KEYS")
        const fields = new Map(fieldKeys.map((s) => [s.name, new Map(s.values.map((v) => [v[0] as string, v[1] as string]))]))
        assert.isAbove(fields.size, 30)
        for (const [measurement, keys] of fields) {
          for (const [key, type] of keys) assert.strictEqual(type, "float", `${measurement}.${key} is ${type}`)
        }

        // The dashboard: the same rows and panels as the Prometheus one, and every query finds data.
        const dashboard = JSON.parse(yield* Effect.promise(() => fs.readFile(dashboardFile, "utf8")))
        const prometheus = JSON.parse(yield* Effect.promise(() => fs.readFile(path.join(repoRoot, "docs/grafana-dashboard.json"), "utf8")))
        const rows = (d: any) => d.panels.filter((p: any) => p.type === "row").map((p: any) => p.title)
        assert.deepStrictEqual(rows(dashboard), rows(prometheus))
        assert.strictEqual(dashboard.panels.length, prometheus.panels.length)
        const variable = dashboard.templating.list.find((v: any) => v.name === "host")
        const hostValues = yield* query(variable.query, influx.reader)
        assert.include(hostValues[0]!.values.map((v) => v[1]), host)
        const panels: Array<any> = dashboard.panels.filter((p: any) => p.type !== "row")
        assert.isAtLeast(panels.flatMap((p) => p.targets).length, 30)
        const failures: Array<string> = []
        for (const panel of panels) {
          const answers: Array<ReadonlyArray<RealInflux.Series>> = []
          for (const target of panel.targets) {
            const q = substitute(target.query, startedMs - 60_000, toMs)
            const series = yield* Effect.promise((): Promise<ReadonlyArray<RealInflux.Series> | string> =>
              influx.query(q, influx.reader).catch((e: Error) => e.message)
            )
            if (typeof series === "string") {
              failures.push(`"${panel.title}" ${target.refId}: ${series}`)
              continue
            }
            answers.push(series)
            const values = series.flatMap((s) => s.values.flatMap((v) => v.slice(1))).filter((v) => typeof v === "number")
            if (values.length === 0) {
              // What was written to the measurement, so a failure says whether the data or the query is wrong.
              const measurement = /FROM "([a-z_]+)"/.exec(target.query)?.[1]
              const written = measurement === undefined ?
                [] :
                yield* Effect.promise(() =>
                  influx.query(`SELECT * FROM "${measurement}" WHERE time >= ${startedMs - 60_000}ms`, influx.reader).catch(() => [])
                )
              failures.push(`"${panel.title}" ${target.refId} found no data: ${q}\n  written: ${JSON.stringify(written).slice(0, 4000)}`)
            }
            // Every measurement and field the query names was written.
            const measurements = [...target.query.matchAll(/FROM "([a-z_]+)"/g)].map((m) => m[1]!)
            for (const m of measurements) if (!fields.has(m)) failures.push(`"${panel.title}" reads ${m}, which was never written`)
            for (const [, field] of target.query.matchAll(/\("(value|sum|count|le_[0-9.]+|le_\+Inf)"\)/g)) {
              if (!fields.get(measurements[0]!)?.has(field!)) {
                failures.push(`"${panel.title}" reads ${measurements[0]}.${field}, never written`)
              }
            }
          }
          // A panel Grafana joins by a tag (fill = used / capacity) has rows to join.
          const join = (panel.transformations ?? []).find((t: any) => t.id === "joinByField")?.options.byField
          if (join !== undefined) {
            const keys = answers.map((series) => new Set(series.map((s) => s.tags?.[join])))
            const common = [...keys[0]!].filter((k) => keys.every((set) => set.has(k)))
            if (common.length === 0) failures.push(`"${panel.title}": its queries have no ${join} in common`)
          }
        }
        assert.deepStrictEqual(failures, [])
      }), { timeout: 420_000 })
  }
)
