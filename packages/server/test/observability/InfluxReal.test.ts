/**
 * The Influx push against a real InfluxDB 1.x (Debian's influxd, authentication on): the
 * in-process server's pusher writes while the lifecycle files, packages, transfers and archives
 * an observation; InfluxQL then reads back every series and field, every field is a float (one
 * type across pushes), and every query of `docs/grafana-dashboard-influx.json` finds data.
 * Faults are the real server's own answers: wrong credentials, a token 1.x cannot read, a
 * missing database, a field of another type, a frozen and a dead server.
 */
import { Ids, Repositories, Transitions } from "@ccat/core"
import { assert, layer as withLayer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Exposition from "../../src/observability/Exposition.js"
import * as InfluxPush from "../../src/observability/InfluxPush.js"
import * as Metrics from "../../src/observability/Metrics.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Harness from "../ApiHarness.js"
import { editLocations, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import * as World from "../lifecycle/LifecycleWorld.js"
import { freePort, repoRoot } from "../support.js"
import { dashboardFailures } from "./InfluxDashboard.js"
import { host, pushesSince, pusherUrl, query, waitFor } from "./InfluxQueries.js"
import * as RealInflux from "./RealInflux.js"

const dashboardFile = path.join(repoRoot, "docs/grafana-dashboard-influx.json")

/** The demo topology with a capacity at the archive, so the fill panel has a figure. */
const topologyWithCapacity = (dir: string) =>
  topologyFrom(dir, (raw) => editLocations(raw, (l) => (l.name === "cologne-archive" ? { ...l, capacityBytes: "1 GB" } : l)))

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

withLayer(Layer.mergeAll(Harness.layer(), World.layer, RealInflux.layer), { timeout: 150_000, excludeTestServices: true })(
  "InfluxDB for real",
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
        // And a bundle on its way: the lifecycle's own bundles may all have come and gone between
        // two pushes, and the open-bundle ages have a series only while one is open.
        yield* sql`insert into data_transfer_package (relative_path, status) values ('bundles/chile/in-flight.tar', 'scheduled')`
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
        const failures = yield* dashboardFailures(influx, panels, fields, startedMs - 60_000, toMs)
        assert.deepStrictEqual(failures, [])
      }), { timeout: 420_000 })

    it.scoped("faults are told plainly and never block the server", () =>
      Effect.gen(function* () {
        const influx = yield* RealInflux.RealInflux
        const pushOnce = (options: Partial<InfluxPush.Options> & { url: string }) =>
          Effect.either(
            InfluxPush.pushOnce({ timeout: "5 seconds", tags: { host }, ...options }).pipe(Effect.provide(FetchHttpClient.layer))
          )
        const writer = { username: influx.writer.name, password: Redacted.make(influx.writer.password) }
        const failure = (r: Either.Either<InfluxPush.Delivery, InfluxPush.InfluxPushError | InfluxPush.InfluxConfigError>) => {
          assert.isTrue(Either.isLeft(r), "the push should have failed")
          return (r as Either.Left<InfluxPush.InfluxPushError, never>).left
        }

        const wrong = failure(yield* pushOnce({ url: pusherUrl(influx), username: influx.writer.name, password: Redacted.make("wrong") }))
        assert.strictEqual(wrong.reason, "Unauthorized")
        assert.include(wrong.message, "authorization failed")
        assert.notInclude(wrong.message, "wrong")
        // InfluxDB before 1.8 reads no token: the message names the settings that would work.
        const token = failure(
          yield* pushOnce({ url: pusherUrl(influx), token: Redacted.make(`${influx.writer.name}:${influx.writer.password}`) })
        )
        assert.strictEqual(token.reason, "Unauthorized")
        assert.include(token.message, "CCAT_INFLUX_USERNAME")
        const readOnly = failure(
          yield* pushOnce({ url: pusherUrl(influx), username: influx.reader.name, password: Redacted.make(influx.reader.password) })
        )
        assert.strictEqual(readOnly.reason, "Unauthorized")
        const missing = failure(yield* pushOnce({ url: pusherUrl(influx, "db=nosuchdb"), ...writer }))
        assert.strictEqual(missing.reason, "NotFound")
        assert.include(missing.message, 'database not found: "nosuchdb"')
        const noDb = failure(yield* pushOnce({ url: pusherUrl(influx, ""), ...writer }))
        assert.strictEqual(noDb.reason, "Rejected")
        assert.include(noDb.message, "database is required")
        const badPrecision = failure(yield* pushOnce({ url: pusherUrl(influx, "db=ccat&precision=us"), ...writer }))
        assert.strictEqual(badPrecision._tag, "InfluxConfigError")

        // Settings that cannot work are refused when the environment is read, before anything starts.
        const fromEnv = (env: Record<string, string>) =>
          Effect.either(Effect.withConfigProvider(InfluxPush.config, ConfigProvider.fromMap(new Map(Object.entries(env)))))
        for (
          const [env, says] of [
            [{ CCAT_INFLUX_URL: "influx:8086/write" }, "is not an http or https URL"],
            [{ CCAT_INFLUX_URL: "not a url" }, "is not a URL"],
            [{ CCAT_INFLUX_URL: `${influx.base}/write?db=ccat&precision=us` }, "precision=us"],
            [{
              CCAT_INFLUX_URL: `${influx.base}/write?db=ccat`,
              CCAT_INFLUX_TOKEN: "t",
              CCAT_INFLUX_USERNAME: "u",
              CCAT_INFLUX_PASSWORD: "p"
            }, "not both"],
            [{ CCAT_INFLUX_URL: `${influx.base}/write?db=ccat`, CCAT_INFLUX_USERNAME: "u" }, "needs a password"],
            [{ CCAT_INFLUX_URL: `${influx.base}/write?db=ccat`, CCAT_INFLUX_INTERVAL_SECONDS: "0" }, "at least 1"]
          ] as const
        ) {
          const read = yield* fromEnv(env)
          assert.isTrue(
            Either.isLeft(read) && String(read.left).includes(says),
            `${JSON.stringify(env)}: ${String(Either.isLeft(read) ? read.left : "accepted")}`
          )
        }
        const unset = yield* fromEnv({})
        assert.isTrue(Either.isRight(unset) && unset.right._tag === "None")

        // Escapes and values the real parser must take: odd tag values, a reserved tag key, extreme floats.
        const odd: Array<Exposition.Family> = [{
          name: "ccat_test_escaping",
          help: "",
          type: "gauge",
          samples: [
            {
              name: "ccat_test_escaping",
              labels: { time: "t", path: 'a "quoted" \\ value\nnext', odd: "x, y=z", trailing: "ends in \\", dir: "C:\\data\\\\raw" },
              value: 5e21
            },
            { name: "ccat_test_escaping", labels: { path: "tiny" }, value: 5e-324 },
            { name: "ccat_test_escaping", labels: { path: "negative" }, value: -0.25 }
          ]
        }]
        const oddWrite = yield* Effect.promise(() =>
          fetch(pusherUrl(influx), {
            method: "POST",
            body: Exposition.lineProtocol(odd, BigInt(Date.now()), { host }),
            headers: { authorization: `Basic ${Buffer.from(`${influx.writer.name}:${influx.writer.password}`).toString("base64")}` }
          }).then(async (r) => ({ status: r.status, text: await r.text() }))
        )
        assert.deepStrictEqual(oddWrite, { status: 204, text: "" })
        const readBack = yield* query(`SELECT * FROM "ccat_test_escaping" GROUP BY *`)
        const byPath = new Map(readBack.map((s) => [s.tags!.path, { tags: s.tags, value: s.values[0]![s.columns.indexOf("value")] }]))
        // A backslash is kept as written, except one before a space, comma or equals sign or at the end, which line protocol cannot carry.
        assert.deepStrictEqual(byPath.get('a "quoted"  value next'), {
          tags: { host, dir: "C:\\data\\\\raw", odd: "x, y=z", path: 'a "quoted"  value next', time_: "t", trailing: "ends in " },
          value: 5e21
        })
        assert.strictEqual(byPath.get("tiny")?.value, 5e-324)
        assert.strictEqual(byPath.get("negative")?.value, -0.25)

        // A database where ccat_ops_db_up was once written as an integer: that line is dropped, the rest is written.
        yield* query(`CREATE DATABASE "legacy"`)
        yield* query(`GRANT WRITE ON "legacy" TO "${influx.writer.name}"`)
        yield* Effect.promise(() =>
          fetch(`${influx.base}/write?db=legacy`, {
            method: "POST",
            body: "ccat_ops_db_up,host=old value=1i\n",
            headers: { authorization: `Basic ${Buffer.from(`${influx.admin.name}:${influx.admin.password}`).toString("base64")}` }
          })
        )
        const partial = yield* pushOnce({ url: pusherUrl(influx, "db=legacy&precision=s"), ...writer })
        assert.isTrue(Either.isRight(partial))
        const delivered = (partial as Either.Right<never, InfluxPush.Delivery>).right
        assert.include(delivered.partial ?? "", "field type conflict")
        assert.isAbove(delivered.lines, 10)
        const legacy = yield* Effect.promise(() =>
          fetch(`${influx.base}/query?db=legacy&epoch=s&q=${encodeURIComponent(`SELECT last("value") FROM "ccat_raw_data_files"`)}`, {
            headers: { authorization: `Basic ${Buffer.from(`${influx.admin.name}:${influx.admin.password}`).toString("base64")}` }
          }).then((r) => r.json() as Promise<any>)
        )
        const written = legacy.results[0].series[0].values[0]
        assert.isBelow(Math.abs(written[0] - Date.now() / 1000), 60)

        // A frozen InfluxDB: pushes time out, the running pusher backs off, the server keeps answering.
        const since = Date.now()
        yield* Layer.build(
          InfluxPush.layer({
            url: pusherUrl(influx),
            ...writer,
            interval: "200 millis",
            timeout: "1 second",
            maxBackoff: "1 second",
            tags: { host }
          })
        )
        yield* waitFor("a push before the freeze", Effect.map(pushesSince(since), (n) => n >= 1))
        influx.process.kill("SIGSTOP")
        const frozen = yield* Effect.ensuring(
          Effect.gen(function* () {
            const timedOut = failure(yield* pushOnce({ url: pusherUrl(influx), ...writer, timeout: "500 millis" }))
            const asked = Date.now()
            const health = yield* Harness.raw("GET", "/api/v1/health")
            return { timedOut, health, healthMs: Date.now() - asked }
          }),
          Effect.sync(() => influx.process.kill("SIGCONT"))
        )
        assert.strictEqual(frozen.timedOut.reason, "Timeout")
        assert.strictEqual(frozen.health.status, 200)
        assert.isBelow(frozen.healthMs, 5000)
        const thawed = Date.now()
        yield* waitFor("a push after the thaw", Effect.map(pushesSince(thawed), (n) => n >= 1), 20_000)

        // A dead InfluxDB: nothing listens on its port; credentials in a 1.x URL's query are never repeated.
        const port = yield* Effect.promise(freePort)
        const dead = failure(yield* pushOnce({ url: `http://127.0.0.1:${port}/write?db=ccat&u=me&p=hunter2` }))
        assert.strictEqual(dead.reason, "Transport")
        assert.include(dead.message, "ECONNREFUSED")
        assert.notInclude(dead.message, "hunter2")
      }))
  }
)
