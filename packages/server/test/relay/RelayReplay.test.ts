/**
 * The one instant the relay cannot see: the main has stored a filing but its answer never reached
 * the relay. Here a TCP proxy between the two lets requests through, swallows the main's answers,
 * and SIGKILLs the main the moment the first byte of its answer arrives; then the relay is
 * SIGKILLed too. The main's key record must already be committed with the filing (a record
 * written after the answer would be left `running`, and the resend would wait out its lease).
 * Both start again; the relay forwards the filing again under the same key and the main answers
 * it from its record (the proxy sees `Idempotent-Replayed: true`): one observation, one event per
 * file, nothing filed twice. The events name the relay's account as actor and the instrument's
 * account they were relayed for.
 */
import { CcatClient } from "@ccat/client"
import { Fixtures } from "@ccat/core/testing"
import { layer } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as net from "node:net"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import { freePort } from "../support.js"
import { layer as relayWorld, RelayDb, waitFor, World } from "./RelayWorld.js"

/** A proxy to the main that, while `swallow` is set, passes requests on, drops the answers and calls `onSwallowed` at a POST's first answer byte. */
const answerSwallowingProxy = (target: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const url = new URL(target)
      const port = await freePort()
      const state = { swallow: false, answers: [] as Array<string>, onSwallowed: undefined as (() => void) | undefined }
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        const upstream = net.connect(Number(url.port), url.hostname)
        sockets.add(client).add(upstream)
        // The method of the last request on this connection: only a filing's answer (a POST's) kills.
        let method = ""
        client.on("data", (chunk: Buffer) => {
          const m = /^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /.exec(chunk.toString("latin1", 0, 8))
          if (m !== null) method = m[1]!
          upstream.write(chunk)
        })
        upstream.on("data", (chunk: Buffer) => {
          state.answers.push(chunk.toString("latin1"))
          if (!state.swallow) return void client.write(chunk)
          if (method !== "POST") return
          const once = state.onSwallowed
          state.onSwallowed = undefined
          once?.()
        })
        const close = () => {
          client.destroy()
          upstream.destroy()
        }
        client.on("error", close)
        upstream.on("error", close)
        client.on("close", close)
        upstream.on("close", close)
      })
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
      return { url: `http://127.0.0.1:${port}`, state, server, sockets }
    }),
    (p) => Effect.promise(() => {
      for (const s of p.sockets) s.destroy()
      return new Promise<void>((resolve) => p.server.close(() => resolve()))
    })
  )

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

layer(relayWorld, { timeout: 300_000, excludeTestServices: true })("relay replay", (it) => {
  it.scoped("a filing the main stored whose answer was lost, with the main and the relay SIGKILLed, is forwarded again under its key and filed once", () =>
    Effect.gen(function* () {
      const w = yield* World
      const sql = yield* SqlClient.SqlClient
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const instrumentName = `instrument-${Fixtures.suffix()}`
      const relayName = `relay-${Fixtures.suffix()}`
      const instrumentToken = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id], name: instrumentName })
      const relayToken = yield* Harness.tokenFor({ role: "admin", name: relayName })
      const proxy = yield* answerSwallowingProxy(w.mainUrl)
      yield* promise(() => w.main.start())
      const relay = w.relayWith({ CCAT_RELAY_TOKEN: relayToken, CCAT_RELAY_REQUEST_TIMEOUT: "60 seconds" }, { mainUrl: proxy.url })
      yield* Effect.addFinalizer(() => promise(() => relay.stop()))
      yield* promise(() => relay.start())
      yield* waitFor(
        "the relay to know the instrument's token",
        15_000,
        promise(() =>
          fetch(`${w.relayUrl}/api/v1/relay/status`, { headers: { authorization: `Bearer ${instrumentToken}` } }).then((r) =>
            r.status === 200
          )
        )
      )

      proxy.state.swallow = true
      let mainKilled: Promise<void> | undefined
      proxy.state.onSwallowed = () => (mainKilled = w.main.kill())
      const request = {
        id: randomUUID(),
        obsUnitId: world.obsUnit.id,
        startAt: new Date("2026-05-01T03:00:00Z"),
        sourceLocation: world.source.name,
        files: Array.from({ length: 3 }, (_, i) => ({
          id: randomUUID(),
          module: "280GHz",
          relativePath: `replay-${randomUUID()}/f${i}.fits`,
          sizeBytes: 10 + i,
          checksum: sha()
        }))
      }
      const client = yield* CcatClient.make({ baseUrl: w.relayUrl, token: instrumentToken, retry: false }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      yield* CcatClient.idempotent(randomUUID())(client.observations.file({ payload: request as any }))
      const [filing] = yield* Effect.flatMap(
        RelayDb,
        (r) => r<{ id: string; state: string }>`select id, state from relay.filing where observation_id = ${request.id}`
      ).pipe(Effect.orDie)
      expect(filing.state).toBe("pending")

      // The main was SIGKILLed as its answer began to leave: the filing and its key's record are both committed.
      yield* waitFor("the main to be SIGKILLed as its answer leaves", 30_000, Effect.sync(() => mainKilled !== undefined))
      yield* promise(() => mainKilled!)
      const [stored] = yield* sql<{ files: number; state: string | null }>`
        select (select count(*)::int from raw_data_file where executed_obs_unit_id = ${request.id}) as files,
          (select state from idempotency_key where key = ${filing.id}) as state`
      expect(stored).toEqual({ files: 3, state: "done" })
      const answered = proxy.state.answers.length
      yield* promise(() => relay.kill())
      const [still] = yield* Effect.flatMap(RelayDb, (r) => r<{ state: string }>`select state from relay.filing where id = ${filing.id}`)
        .pipe(Effect.orDie)
      expect(still.state).toBe("pending")

      proxy.state.swallow = false
      yield* promise(() => w.main.start())
      yield* promise(() => relay.start())
      yield* waitFor(
        "the relay to record the filing forwarded",
        60_000,
        Effect.map(
          Effect.flatMap(RelayDb, (r) => r<{ state: string }>`select state from relay.filing where id = ${filing.id}`).pipe(Effect.orDie),
          ([r]) => r.state === "forwarded"
        )
      )
      const replayed = proxy.state.answers.slice(answered).join("")
      expect(replayed.toLowerCase()).toContain("idempotent-replayed: true")

      const [counts] = yield* sql<{ observations: number; files: number; events: number; keys: number }>`
        select (select count(*)::int from executed_obs_unit where id = ${request.id}) as observations,
          (select count(*)::int from raw_data_file where executed_obs_unit_id = ${request.id}) as files,
          (select count(*)::int from event_log e join raw_data_file f on f.id = e.entity_id where f.executed_obs_unit_id = ${request.id}) as events,
          (select count(*)::int from idempotency_key where key = ${filing.id}) as keys`
      expect(counts).toEqual({ observations: 1, files: 3, events: 3, keys: 1 })
      const events = yield* sql<{ actor: string; onBehalfOf: string | null }>`
        select e.actor, e.details->>'onBehalfOf' as on_behalf_of from event_log e join raw_data_file f on f.id = e.entity_id
        where f.executed_obs_unit_id = ${request.id}`
      expect(events).toEqual(Array(3).fill({ actor: relayName, onBehalfOf: instrumentName }))
    }))
})
