import { describe, expect, it } from "@effect/vitest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createAnsweringServer } from "../src/HttpServer.js"
import { freePort } from "./support.js"

describe("the HTTP server while it starts and stops", () => {
  it.scopedLive("answers 503 NotReady before the application is attached and after it is gone, and the application's answers in between", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(freePort)
      const get = () => Effect.promise(() => fetch(`http://127.0.0.1:${port}/api/v1/health`, { signal: AbortSignal.timeout(5_000) }))
      // The port is open and no application is served yet: the window in which Node used to drop requests.
      const server = yield* Layer.build(NodeHttpServer.layer(createAnsweringServer, { host: "127.0.0.1", port }))
      const early = yield* get()
      expect(early.status).toBe(503)
      expect(early.headers.get("retry-after")).toBe("1")
      expect(yield* Effect.promise(() => early.json())).toEqual({
        _tag: "NotReady",
        reason: "the server is starting or stopping; retry shortly"
      })
      // Once the application is served, it alone answers.
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(HttpServer.serve(HttpServerResponse.text("up")))
          const served = yield* get()
          expect(served.status).toBe(200)
          expect(yield* Effect.promise(() => served.text())).toBe("up")
        }).pipe(Effect.provide(server))
      )
      // The application stopped (shutdown); the port still answers, with 503.
      expect((yield* get()).status).toBe(503)
    }))
})
