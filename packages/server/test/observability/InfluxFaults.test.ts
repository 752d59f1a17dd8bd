/**
 * The Influx push's faults against a real InfluxDB 1.x (Debian's influxd, authentication on), each
 * the real server's own answer: wrong credentials, a token 1.x cannot read, a missing database, a
 * field of another type, odd tag values, a frozen and a dead server. Settings that cannot work are
 * refused when the environment is read.
 */
import { assert, layer as withLayer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Exposition from "../../src/observability/Exposition.js"
import * as InfluxPush from "../../src/observability/InfluxPush.js"
import * as Harness from "../ApiHarness.js"
import { host, pushesSince, pusherUrl, query, waitFor } from "./InfluxQueries.js"
import * as RealInflux from "./RealInflux.js"

withLayer(Layer.mergeAll(Harness.layer(), RealInflux.layer), { timeout: 150_000, excludeTestServices: true })(
  "InfluxDB for real: faults",
  (it) => {
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
        const port = yield* Effect.promise(RealInflux.freePort)
        const dead = failure(yield* pushOnce({ url: `http://127.0.0.1:${port}/write?db=ccat&u=me&p=hunter2` }))
        assert.strictEqual(dead.reason, "Transport")
        assert.include(dead.message, "ECONNREFUSED")
        assert.notInclude(dead.message, "hunter2")
      }))
  }
)
