/**
 * The telescope-side relay as real processes (`ccat serve` and `ccat relay`, each SIGKILLable)
 * on real PostgreSQL: filings taken while the main is down arrive at the main exactly once and
 * in order once it is back; a relay SIGKILLed with a backlog, and again while forwarding, loses
 * nothing it acknowledged; a token revoked at the main stops working at the relay within the
 * sync interval; a filing the main refuses is kept and shown, and does not hold back the rest.
 */
import { CcatClient } from "@ccat/client"
import { Fixtures } from "@ccat/core/testing"
import { layer } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import { type CcatProcess, layer as relayWorld, RelayDb, waitFor, World } from "./RelayWorld.js"

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

const observation = (world: Fixtures.World, files: number, extra: { readonly metadata?: Record<string, unknown> } = {}) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date("2026-05-01T03:00:00Z"),
  sourceLocation: world.source.name,
  files: Array.from({ length: files }, (_, i) => ({
    id: randomUUID(),
    module: i % 2 === 0 ? "280GHz" : "350GHz",
    relativePath: `relay-${randomUUID()}/f${i}.fits`,
    sizeBytes: 100 + i,
    checksum: sha()
  })),
  ...extra
})

/** The derived client pointed at the relay: the same client, another base URL. */
const relayClient = (token: string) =>
  Effect.flatMap(World, (w) => CcatClient.make({ baseUrl: w.relayUrl, token, retry: false })).pipe(Effect.provide(FetchHttpClient.layer))

/** Files through the relay under a fresh key, as the outbox does. */
const fileAtRelay = (client: CcatClient.Client, request: ReturnType<typeof observation>) =>
  CcatClient.idempotent(randomUUID())(client.observations.file({ payload: request as any }))

const relayBacklog = Effect.flatMap(
  RelayDb,
  (sql) => sql<{ state: string; n: number }>`select state, count(*)::int as n from relay.filing group by state`
).pipe(Effect.map((rows) => Object.fromEntries(rows.map((r) => [r.state, r.n])) as Record<string, number>), Effect.orDie)

const mainCounts = (observationIds: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ observations: number; files: number; events: number; closed: number }>`
      select (select count(*)::int from executed_obs_unit where id = any(${observationIds}::uuid[])) as observations,
        (select count(*)::int from raw_data_file where executed_obs_unit_id = any(${observationIds}::uuid[])) as files,
        (select count(*)::int from event_log e join raw_data_file f on f.id = e.entity_id where f.executed_obs_unit_id = any(${observationIds}::uuid[]) and e.from_state is null) as events,
        (select count(*)::int from executed_obs_unit where id = any(${observationIds}::uuid[]) and end_at is not null) as closed`).pipe(
    Effect.map((rows) => rows[0]),
    Effect.orDie
  )

const setup = Effect.gen(function* () {
  const w = yield* World
  const world = yield* Fixtures.world.pipe(Effect.orDie)
  const instrumentToken = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
  const relayToken = yield* Harness.tokenFor({ role: "admin", name: `relay-${Fixtures.suffix()}` })
  return { w, world, instrumentToken, relayToken }
})

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Runs a test body with a relay process of the world, stopped however the body ends. */
const withRelay = <A, E, R>(env: Record<string, string>, body: (relay: CcatProcess) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(World, (w) => {
    const relay = w.relayWith(env)
    return Effect.ensuring(body(relay), promise(() => relay.stop()))
  })

/** Waits until the relay's synced reference data knows a token (a relay restarted on an older copy syncs at once). */
const relayKnows = (token: string) =>
  Effect.flatMap(
    World,
    (w) =>
      waitFor(
        "the relay to know the token",
        15_000,
        promise(() =>
          fetch(`${w.relayUrl}/api/v1/relay/status`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status === 200)
        )
      )
  )

layer(relayWorld, { timeout: 600_000, excludeTestServices: true })("relay", (it) => {
  it.effect(
    "filings taken while the main is down, through a relay SIGKILLed with its backlog and again while forwarding, arrive once and in order",
    () =>
      Effect.gen(function* () {
        const { w, world, instrumentToken, relayToken } = yield* setup
        yield* promise(() => w.main.start())
        yield* withRelay({ CCAT_RELAY_TOKEN: relayToken }, (relay) => Effect.gen(function* () {
          yield* promise(() => relay.start())
          yield* promise(() => w.main.kill())

          const client = yield* relayClient(instrumentToken)
          const requests = Array.from({ length: 20 }, (_, i) => observation(world, 1 + (i % 3)))
          for (const r of requests) {
            const answer = yield* fileAtRelay(client, r)
            expect(answer.observation.id).toBe(r.id)
          }
          // Additions and a close of the first observation, behind it in the queue.
          const extra = observation(world, 2).files
          yield* CcatClient.idempotent(randomUUID())(
            client.observations.addFiles({
              path: { id: requests[0].id as any },
              payload: { sourceLocation: world.source.name, files: extra }
            })
          )
          yield* CcatClient.idempotent(randomUUID())(
            client.observations.close({
              path: { id: requests[0].id as any },
              payload: { endAt: new Date("2026-05-01T04:00:00Z"), status: "completed" }
            })
          )
          expect(yield* relayBacklog).toEqual({ pending: 22 })

          // The relay dies with its backlog; what it acknowledged is still there after a restart.
          yield* promise(() => relay.kill())
          yield* promise(() => relay.start())
          expect(yield* relayBacklog).toEqual({ pending: 22 })
          const ids = requests.map((r) => r.id)
          expect(yield* mainCounts(ids)).toMatchObject({ observations: 0 })

          // The main comes back; the relay is killed again once forwarding has begun.
          yield* promise(() => w.main.start())
          yield* waitFor("forwarding to begin", 60_000, Effect.map(relayBacklog, (b) => (b.forwarded ?? 0) > 0))
          yield* promise(() => relay.kill())
          yield* promise(() => relay.start())
          // a stall here is shown with what each side holds: the relay's rows, the main's sessions
          yield* waitFor("the backlog to drain", 120_000, Effect.map(relayBacklog, (b) => b.pending === undefined && b.forwarded === 22))
            .pipe(
              Effect.onError(() =>
                Effect.gen(function* () {
                  const rows = yield* Effect.flatMap(
                    RelayDb,
                    (sql) => sql`select seq, kind, state, attempts, last_error from relay.filing order by seq`
                  )
                  const main = yield* SqlClient.SqlClient
                  const sessions = yield* main`
              select pid, state, wait_event_type, wait_event, left(query, 200) as query, now() - xact_start as in_transaction
              from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`
                  console.log(
                    `relay filings: ${JSON.stringify(rows)}\nmain sessions: ${JSON.stringify(sessions)}\n${relay.tail()}\n${w.main.tail()}`
                  )
                }).pipe(Effect.ignore)
              )
            )

          const files = requests.reduce((n, r) => n + r.files.length, 0) + extra.length
          expect(yield* mainCounts(ids)).toEqual({ observations: 20, files, events: files, closed: 1 })
          // In order: the main saw each forwarded filing's key in the relay's acceptance order.
          const relayOrder = yield* Effect.flatMap(RelayDb, (sql) => sql<{ id: string }>`select id from relay.filing order by seq`).pipe(
            Effect.orDie
          )
          const sql = yield* SqlClient.SqlClient
          const mainOrder = yield* sql<{ key: string }>`select key from idempotency_key where key = any(${
            relayOrder.map((r) => r.id)
          }::text[]) order by created_at, key`
          expect(mainOrder.map((r) => r.key)).toEqual(relayOrder.map((r) => r.id))
        }))
      }),
    // five process starts one after another (two of the main, three of the relay): minutes on a loaded machine
    420_000
  )

  it.effect("a filing the main refuses is kept and shown with the main's reason and does not hold back the next; bad input is refused at once", () =>
    Effect.gen(function* () {
      const { w, world, instrumentToken, relayToken } = yield* setup
      yield* promise(() => w.main.start())
      yield* withRelay({ CCAT_RELAY_TOKEN: relayToken }, (relay) => Effect.gen(function* () {
        yield* promise(() => relay.start())
        yield* relayKnows(instrumentToken)
        const client = yield* relayClient(instrumentToken)
        const mainClient = yield* CcatClient.make({ baseUrl: w.mainUrl, token: instrumentToken, retry: false }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )

        // Filed at the main with other metadata: the relay cannot know, the main refuses it (409).
        const conflicting = observation(world, 1, { metadata: { run: 1 } })
        yield* mainClient.observations.file({ payload: conflicting as any })
        const before = yield* relayBacklog
        yield* fileAtRelay(client, { ...conflicting, metadata: { run: 2 } })
        const next = observation(world, 2)
        yield* fileAtRelay(client, next)
        yield* waitFor(
          "both to be settled",
          60_000,
          Effect.map(relayBacklog, (b) => b.pending === undefined && (b.refused ?? 0) === (before.refused ?? 0) + 1)
        )
        expect(yield* mainCounts([next.id])).toMatchObject({ observations: 1, files: 2 })

        const status = yield* promise(() => ccat(w.cli, ["relay", "status", "--url", w.relayUrl, "--token", instrumentToken]))
        expect(status.code).toBe(4)
        expect(status.stdout).toContain("Refused by the main")
        expect(status.stdout).toContain("DifferentContent")
        expect(status.stdout).toContain(conflicting.id)
        const metrics = yield* promise(() => fetch(`${w.relayUrl}/metrics`).then((r) => r.text()))
        expect(metrics).toMatch(/ccat_relay_refused_filings [1-9]/)
        expect(metrics).toContain("ccat_relay_backlog_filings 0")

        // An instrument's retry to the relay under the same key is answered from the record and queued once.
        const queued = yield* relayBacklog
        const retried = observation(world, 1)
        const key = randomUUID()
        const first = yield* CcatClient.idempotent(key)(client.observations.file({ payload: retried as any }))
        const second = yield* CcatClient.idempotent(key)(client.observations.file({ payload: retried as any }))
        expect(second).toEqual(first)
        yield* waitFor(
          "the retried filing to be forwarded once",
          30_000,
          Effect.map(relayBacklog, (b) => b.pending === undefined && b.forwarded === (queued.forwarded ?? 0) + 1)
        )

        // Checked against the reference data at once: an unknown module is a 422 and nothing is stored.
        const stored = yield* relayBacklog
        const bad = observation(world, 1)
        const refused = yield* fileAtRelay(client, { ...bad, files: [{ ...bad.files[0], module: "no-such-module" }] }).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "Unprocessable", reason: "UnknownReference", field: "files[0].module" })
        expect(yield* relayBacklog).toEqual(stored)
        const unknownPath = yield* promise(() =>
          fetch(`${w.relayUrl}/api/v1/packages`, { headers: { authorization: `Bearer ${instrumentToken}` } })
        )
        const unknownBody = yield* promise(() => unknownPath.text())
        expect([unknownPath.status, unknownBody]).toEqual([404, expect.stringContaining("ask the main")])
      }))
    }))

  it.effect("with no database given, the relay keeps its store in an embedded PostgreSQL under its data folder", () =>
    Effect.gen(function* () {
      const { w, world, instrumentToken, relayToken } = yield* setup
      yield* promise(() => w.main.start())
      const dataDir = `${w.dir}/relay-embedded`
      yield* withRelay(
        { CCAT_RELAY_TOKEN: relayToken, CCAT_RELAY_DATABASE_URL: "", CCAT_DATA_DIR: dataDir },
        (relay) =>
          Effect.gen(function* () {
            yield* promise(() => relay.start())
            expect(relay.output).toContain(dataDir)
            yield* relayKnows(instrumentToken)
            const request = observation(world, 2)
            yield* fileAtRelay(yield* relayClient(instrumentToken), request)
            yield* waitFor(
              "the filing to reach the main",
              30_000,
              Effect.map(mainCounts([request.id]), (c) => c.observations === 1 && c.files === 2)
            )
          })
      )
    }))

  it.effect("a token revoked at the main stops working at the relay within the sync interval", () =>
    Effect.gen(function* () {
      const { w, world, instrumentToken, relayToken } = yield* setup
      yield* promise(() => w.main.start())
      yield* withRelay({ CCAT_RELAY_TOKEN: relayToken }, (relay) => Effect.gen(function* () {
        yield* promise(() => relay.start())
        yield* relayKnows(instrumentToken)
        const client = yield* relayClient(instrumentToken)
        yield* fileAtRelay(client, observation(world, 1))
        const sql = yield* SqlClient.SqlClient
        const prefix = instrumentToken.split("_")[1]
        yield* sql`update api_token set revoked_at = now() where prefix = ${prefix}`
        const revokedAt = Date.now()
        const error = yield* waitFor(
          "the relay to refuse the revoked token",
          10_000,
          fileAtRelay(client, observation(world, 1)).pipe(Effect.as(false), Effect.catchAll((e) => Effect.succeed(e)))
        )
        const delay = Date.now() - revokedAt
        expect(error).toMatchObject({ _tag: "Unauthorized", reason: "Revoked" })
        console.log(`revocation took effect at the relay after ${delay} ms (sync interval 1 s)`)
        expect(delay).toBeLessThan(3_000)
      }))
    }))
})

/** Runs the bundled `ccat` with arguments; answers exit code and output. */
const ccat = (cli: string, args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    )
  })
