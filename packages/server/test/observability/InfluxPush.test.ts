/**
 * The Influx pusher against a real HTTP listener (node:http on a free port) standing in for
 * InfluxDB's write endpoint: every body parses line by line under the line-protocol grammar, the
 * token is sent, and a failing endpoint is retried with backoff until it answers again.
 */
import { Topology } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { assert, layer as withLayer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { AddressInfo } from "node:net"
import * as InfluxPush from "../../src/observability/InfluxPush.js"
import * as TopologySync from "../../src/TopologySync.js"
import { parseLines } from "./Formats.js"

interface Received {
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** A listener that answers each write with the next status of `statuses` (then 204). */
const listener = (statuses: ReadonlyArray<number> = []) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; received: Array<Received>; answered: Array<number> }>((resume) => {
      const received: Array<Received> = []
      const answered: Array<number> = []
      const server = createServer((req, res) => {
        let body = ""
        req.setEncoding("utf8")
        req.on("data", (c) => (body += c))
        req.on("end", () => {
          const status = statuses[answered.length] ?? 204
          answered.push(status)
          if (status === 204) received.push({ url: req.url ?? "", headers: req.headers, body })
          res.writeHead(status, { "content-type": "application/json" }).end(status === 204 ? "" : '{"code":"internal error"}')
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as AddressInfo).port
        resume(
          Effect.succeed(
            Object.assign({ url: `http://127.0.0.1:${port}/api/v2/write?org=ccat&bucket=ops`, received, answered }, { server })
          )
        )
      })
    }),
    (l) => Effect.async<void>((resume) => void (l as any).server.close(() => resume(Effect.void)))
  )

const waitFor = (done: () => boolean, ms = 30_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (!done()) {
      if (Date.now() > deadline) return yield* Effect.dieMessage("the listener did not receive what was expected in time")
      yield* Effect.sleep("50 millis")
    }
  })

withLayer(TestDatabase.layer, { timeout: 60_000, excludeTestServices: true })("InfluxPush", (it) => {
  it.scoped("pushes line protocol with the token; every line parses", () =>
    Effect.gen(function* () {
      yield* TopologySync.sync(Topology.demo("/tmp/ccat-influx-test"))
      const influx = yield* listener()
      yield* Layer.build(
        InfluxPush.layer({ url: influx.url, token: Redacted.make("s3cret"), interval: "200 millis", tags: { host: "test host" } })
      )
      yield* waitFor(() => influx.received.length >= 2)
      const first = influx.received[0]!
      assert.strictEqual(first.url, "/api/v2/write?org=ccat&bucket=ops")
      assert.strictEqual(first.headers.authorization, "Token s3cret")
      assert.match(first.headers["content-type"] ?? "", /^text\/plain/)
      for (const r of influx.received) {
        const lines = parseLines(r.body)
        assert.isAbove(lines.length, 10)
        for (const l of lines) {
          assert.strictEqual(l.tags.host, "test host")
          assert.isDefined(l.timestamp)
          assert.isTrue(Object.values(l.fields).every((v) => typeof v === "number" && Number.isFinite(v)))
        }
        const up = lines.find((l) => l.measurement === "ccat_ops_db_up")
        assert.strictEqual(up?.fields.value, 1)
        assert.isDefined(lines.find((l) => l.measurement === "ccat_raw_data_files" && l.tags.state === "filed"))
        assert.isDefined(lines.find((l) => l.measurement === "ccat_location_available"))
      }
      // Timestamps are nanoseconds of now.
      const ts = parseLines(first.body)[0]!.timestamp!
      assert.isBelow(Math.abs(Number(ts / 1_000_000n) - Date.now()), 60_000)
    }))

  it.scoped("backs off while the endpoint fails and resumes when it answers", () =>
    Effect.gen(function* () {
      const influx = yield* listener([500, 500, 503])
      const start = Date.now()
      yield* Layer.build(InfluxPush.layer({ url: influx.url, interval: "100 millis", maxBackoff: "400 millis", timeout: "5 seconds" }))
      yield* waitFor(() => influx.received.length >= 1)
      assert.deepStrictEqual(influx.answered.slice(0, 4), [500, 500, 503, 204])
      // Three failures waited at least 50 % of 100, 200 and 400 ms before the delivery.
      assert.isAtLeast(Date.now() - start, 350)
      assert.isAbove(parseLines(influx.received[0]!.body).length, 10)
      assert.isUndefined(influx.received[0]!.headers.authorization)
    }))

  it("backoff doubles per failure, is capped and jittered to 50–100 %", () => {
    for (let failures = 1; failures <= 12; failures++) {
      const ms = Duration.toMillis(InfluxPush.backoff(Duration.seconds(1), Duration.seconds(60), failures))
      const full = Math.min(60_000, 1000 * 2 ** (failures - 1))
      assert.isAtLeast(ms, full / 2)
      assert.isAtMost(ms, full)
    }
  })
})
