import { assert, describe, it } from "@effect/vitest"
import { ApiErrors } from "@ccat/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as http from "node:http"
import { CcatClient, RetryPolicy } from "../src/index.js"

/** A real HTTP server that answers from a script, counting requests per path. */
const scriptedServer = (answer: (req: http.IncomingMessage, n: number) => { status: number; body: unknown }) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; seen: Array<string> }>((resume) => {
      const seen: Array<string> = []
      const server = http.createServer((req, res) => {
        seen.push(`${req.method} ${req.url} key=${req.headers["idempotency-key"] ?? "-"}`)
        const { status, body } = answer(req, seen.length)
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
      })
      server.listen(0, "127.0.0.1", () => {
        const a = server.address() as { port: number }
        resume(Effect.succeed({ url: `http://127.0.0.1:${a.port}`, seen, server }))
      })
    }),
    (s) => Effect.async<void>((resume) => void (s as unknown as { server: http.Server }).server.close(() => resume(Effect.void)))
  )

const request = HttpClientRequest.get("http://127.0.0.1:1/")
const response = (status: number) => HttpClientResponse.fromWeb(request, new Response(null, { status }))

describe("RetryPolicy", () => {
  it.effect("backs off exponentially, never beyond the cap, with jitter", () =>
    Effect.gen(function* () {
      const delays = yield* Schedule.run(
        Schedule.delays(RetryPolicy.schedule({ base: "100 millis", cap: "1 second" })),
        0,
        Array.from({ length: 8 }, () => undefined)
      )
      const ms = Chunk.toReadonlyArray(delays).map(Duration.toMillis)
      const ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000]
      ms.forEach((d, i) => {
        assert.isAtMost(d, ceilings[i]!)
        assert.isAtLeast(d, ceilings[i]! / 2)
      })
    }))

  it("judges failures by what they mean", () => {
    const judge = (e: unknown) => RetryPolicy.judge(e).verdict
    assert.strictEqual(judge(new HttpClientError.RequestError({ request, reason: "Transport" })), "Transient")
    assert.strictEqual(judge(new HttpClientError.RequestError({ request, reason: "InvalidUrl" })), "Permanent")
    for (const status of [408, 429, 500, 502, 503, 504]) {
      assert.strictEqual(
        judge(new HttpClientError.ResponseError({ request, response: response(status), reason: "StatusCode" })),
        "Transient"
      )
    }
    for (const status of [400, 404, 409, 413, 422, 501]) {
      assert.strictEqual(
        judge(new HttpClientError.ResponseError({ request, response: response(status), reason: "StatusCode" })),
        "Permanent"
      )
    }
    assert.strictEqual(judge(new HttpClientError.ResponseError({ request, response: response(401), reason: "StatusCode" })), "Unauthorized")
    // the contract's typed errors, by the status they are declared with
    const conflict = RetryPolicy.judge(
      new ApiErrors.Conflict({
        reason: "DifferentContent",
        entity: "ExecutedObsUnit",
        id: "x",
        fields: ["endAt"],
        message: "endAt differs"
      })
    )
    assert.deepStrictEqual([conflict.verdict, conflict.status], ["Permanent", 409])
    assert.include(conflict.reason, "endAt differs")
    assert.strictEqual(judge(new ApiErrors.Unauthorized({ reason: "Expired", message: "expired" })), "Unauthorized")
    assert.strictEqual(judge(new Error("boom")), "Permanent")
  })

  it.effect("retries a transient failure a bounded number of times (TestClock)", () =>
    Effect.gen(function* () {
      let attempts = 0
      const call = Effect.suspend(() => {
        attempts++
        return Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport" }))
      })
      const fiber = yield* Effect.fork(RetryPolicy.retry({ base: "1 second", times: 3 })(call))
      yield* TestClock.adjust("1 minute")
      const exit = yield* fiber.await
      assert.isTrue(exit._tag === "Failure")
      assert.strictEqual(attempts, 4)
    }))

  it.scopedLive("the client retries idempotent calls (GET, or a POST with an Idempotency-Key) and not others", () =>
    Effect.gen(function* () {
      const server = yield* scriptedServer((req, n) =>
        req.url === "/api/v1/ready"
          ? (n < 3 ? { status: 503, body: { _tag: "NotReady", reason: "starting" } } : { status: 200, body: { ready: true } })
          : { status: 503, body: { error: "overloaded" } }
      )
      const client = yield* CcatClient.make({ baseUrl: server.url, retry: { base: "5 millis", times: 3 } }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      assert.deepStrictEqual(yield* client.system.ready().pipe(Effect.provide(FetchHttpClient.layer)), { ready: true })
      assert.strictEqual(server.seen.length, 3)

      const payload = {
        id: "4f6c1c51-1f7e-4b8e-9a57-3f0c1a1d2e01",
        obsUnitId: "a0a0a0a0-1f7e-4b8e-9a57-3f0c1a1d2e01",
        startAt: new Date("2026-11-26T00:00:00Z")
      }
      const once = yield* Effect.flip(client.observations.file({ payload }).pipe(Effect.provide(FetchHttpClient.layer)))
      assert.strictEqual(RetryPolicy.judge(once).status, 503)
      assert.strictEqual(server.seen.length, 4, "a POST without an idempotency key is sent once")

      yield* Effect.flip(
        CcatClient.idempotent(payload.id)(client.observations.file({ payload })).pipe(Effect.provide(FetchHttpClient.layer))
      )
      assert.strictEqual(server.seen.length, 8, "a keyed POST is retried")
      assert.include(server.seen[7]!, `key=${payload.id}`)
    }))
})
