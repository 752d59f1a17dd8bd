/**
 * `Idempotency-Key` through the real server on a real ops-db: a retry replays the recorded
 * answer without running again, the same key with another request is refused and changes
 * nothing, parallel requests with one key run once, keys are per caller, bounded, and expire;
 * a claim left by a killed process is taken over after its lease, and a waiting retry gets the
 * first request's answer.
 */
import { layer } from "@effect/vitest"
import { Fixtures, waitUntil } from "@ccat/core/testing"
import { CcatClient } from "@ccat/client"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

const setup = Effect.gen(function* () {
  const world = yield* Fixtures.world.pipe(Effect.orDie)
  const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
  return { world, token }
})

const observation = (world: Fixtures.World, files: number) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: "2026-05-01T03:00:00.000Z",
  sourceLocation: world.source.name,
  files: Array.from({ length: files }, (_, i) => ({
    id: randomUUID(),
    module: "280GHz",
    relativePath: `idem-${randomUUID()}/f${i}.fits`,
    sizeBytes: 100 + i,
    checksum: sha()
  }))
})

/** A POST with a key, answering status, headers and the raw body text. */
const post = (path: string, token: string, body: unknown, key?: string) =>
  Effect.gen(function* () {
    const baseUrl = yield* Harness.BaseUrl
    return yield* Effect.promise(async () => {
      const response = await fetch(`${baseUrl}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          ...(key === undefined ? {} : { "idempotency-key": key })
        },
        body: typeof body === "string" ? body : JSON.stringify(body)
      })
      const text = await response.text()
      return {
        status: response.status,
        replayed: response.headers.get("idempotent-replayed") === "true",
        text,
        json: text === "" ? undefined : JSON.parse(text)
      }
    })
  })

const keyRows = (key: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        { state: string; statusCode: number | null; scope: string }
      >`select state, status_code, scope from idempotency_key where key = ${key}`
  ).pipe(Effect.orDie)

layer(Harness.layer(), { timeout: 60_000, excludeTestServices: true })("idempotency keys", (it) => {
  it.effect("a retry with the same key gets the recorded answer without running again; another request under the key is a 422 that changes nothing", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const sql = yield* SqlClient.SqlClient
      const key = randomUUID()
      const request = observation(world, 3)
      const first = yield* post("/api/v1/observations", token, request, key)
      expect(first.status).toBe(200)
      expect(first.replayed).toBe(false)
      // Closing it changes what running the filing again would answer (an end time); the replay does not.
      yield* sql`update executed_obs_unit set end_at = now(), status = 'completed' where id = ${request.id}`
      const before = yield* Harness.counts()
      const again = yield* post("/api/v1/observations", token, request, key)
      expect(again.status).toBe(200)
      expect(again.replayed).toBe(true)
      expect(again.text).toBe(first.text)
      expect(again.json.observation.endAt).toBeNull()
      expect(yield* Harness.counts()).toEqual(before)

      const other = { ...request, files: request.files.slice(0, 2) }
      const refused = yield* post("/api/v1/observations", token, other, key)
      expect(refused.status).toBe(422)
      expect(refused.json).toMatchObject({ _tag: "Unprocessable", reason: "IdempotencyKeyReused", field: "Idempotency-Key" })
      expect(refused.json.message).toContain(key)
      expect(yield* Harness.counts()).toEqual(before)
      const refusedPath = yield* post(`/api/v1/observations/${request.id}/close`, token, {
        endAt: "2026-05-01T04:00:00Z",
        status: "completed"
      }, key)
      expect(refusedPath.status).toBe(422)
      expect(yield* keyRows(key)).toEqual([expect.objectContaining({ state: "done", statusCode: 200 })])
    }))

  it.effect("parallel requests with one key run once: one answer is run, the others replay it", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const key = randomUUID()
      const request = observation(world, 500)
      const before = yield* Harness.counts()
      const answers = yield* Effect.all(Array.from({ length: 8 }, () => post("/api/v1/observations", token, request, key)), {
        concurrency: 8
      })
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200))
      expect(answers.filter((a) => !a.replayed)).toHaveLength(1)
      expect(new Set(answers.map((a) => a.text)).size).toBe(1)
      const after = yield* Harness.counts()
      expect([
        after.executed_obs_unit - before.executed_obs_unit,
        after.raw_data_file - before.raw_data_file,
        after.event_log - before.event_log
      ]).toEqual([1, 500, 501])
    }))

  it.effect("keys are per caller: another account's request with the same key runs on its own", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const otherToken = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const key = randomUUID()
      const a = yield* post("/api/v1/observations", token, observation(world, 1), key)
      const b = yield* post("/api/v1/observations", otherToken, observation(world, 1), key)
      expect([a.status, b.status, a.replayed, b.replayed]).toEqual([200, 200, false, false])
      expect((yield* keyRows(key)).map((r) => r.scope)).toHaveLength(2)
    }))

  it.effect("a key that is empty, too long or of other characters is a 400 naming the rule, and changes nothing", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const before = yield* Harness.counts()
      for (
        const [key, words] of [
          ["", "empty"],
          ["k".repeat(129), "at most 128"],
          ["key with spaces", "letters, digits"],
          ["a/b#c", "letters, digits"]
        ] as const
      ) {
        const r = yield* post("/api/v1/observations", token, observation(world, 1), key)
        expect(r.status).toBe(400)
        expect(r.json).toMatchObject({ _tag: "BadRequest", reason: "IdempotencyKey" })
        expect(r.json.message).toContain(words)
      }
      expect(yield* Harness.counts()).toEqual(before)
    }))

  it.effect("a refusal (422) is recorded and replayed; a request without valid credentials is refused and records nothing", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const key = randomUUID()
      const bad = { ...observation(world, 1), obsUnitId: randomUUID() }
      const first = yield* post("/api/v1/observations", token, bad, key)
      expect(first.status).toBe(422)
      const again = yield* post("/api/v1/observations", token, bad, key)
      expect([again.status, again.replayed, again.text]).toEqual([422, true, first.text])

      const anonymousKey = randomUUID()
      const anonymous = yield* post("/api/v1/observations", "ccat_abcdefgh_nothing", observation(world, 1), anonymousKey)
      expect(anonymous.status).toBe(401)
      expect(yield* keyRows(anonymousKey)).toEqual([])
    }))

  it.effect("an expired key runs again and the purge deletes expired records", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const sql = yield* SqlClient.SqlClient
      const key = randomUUID()
      const request = observation(world, 1)
      yield* post("/api/v1/observations", token, request, key)
      yield* sql`update idempotency_key set expires_at = now() - interval '1 second' where key = ${key}`
      const again = yield* post("/api/v1/observations", token, request, key)
      expect([again.status, again.replayed]).toEqual([200, false])
      yield* sql`update idempotency_key set expires_at = now() - interval '1 second' where key = ${key}`
      const { purge } = yield* Effect.promise(() => import("../src/http/Idempotency.js"))
      expect(yield* purge("idempotency_key")).toBeGreaterThanOrEqual(1)
      expect(yield* keyRows(key)).toEqual([])
    }))

  it.effect("a claim left by a killed process is taken over after its lease; a retry waiting on a live claim gets its answer", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const sql = yield* SqlClient.SqlClient
      const request = observation(world, 1)
      const first = yield* post("/api/v1/observations", token, request, randomUUID())
      const [row] = yield* sql<
        { scope: string; requestSha256: string; path: string }
      >`select scope, request_sha256, path from idempotency_key order by created_at desc limit 1`
      // Another key for the same request, claimed by a process that died: the lease has passed.
      const stale = randomUUID()
      yield* sql`insert into idempotency_key (scope, key, request_sha256, method, path, state, claim, lease_until, expires_at)
        values (${row.scope}, ${stale}, ${row.requestSha256}, 'POST', ${row.path}, 'running', ${randomUUID()}, now() - interval '1 second', now() + interval '1 hour')`
      // The hash covers the key's request, so it is the same for any key of the same request and caller.
      const taken = yield* post("/api/v1/observations", token, request, stale)
      expect([taken.status, taken.replayed]).toEqual([200, false])

      const live = randomUUID()
      yield* sql`insert into idempotency_key (scope, key, request_sha256, method, path, state, claim, lease_until, expires_at)
        values (${row.scope}, ${live}, ${row.requestSha256}, 'POST', ${row.path}, 'running', ${randomUUID()}, now() + interval '1 hour', now() + interval '1 hour')`
      const waiting = yield* Effect.fork(post("/api/v1/observations", token, request, live))
      yield* Effect.sleep("300 millis")
      yield* sql`update idempotency_key set state = 'done', status_code = 200, content_type = 'application/json', body = ${
        Buffer.from(first.text)
      }, lease_until = null where key = ${live}`
      const answered = yield* waiting.await.pipe(Effect.flatten)
      expect([answered.status, answered.replayed, answered.text]).toEqual([200, true, first.text])
    }))

  it.effect("a caller that hangs up mid-request leaves nothing under its key: no answer, no half of the filing; the retry runs it once", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const sql = yield* SqlClient.SqlClient
      const baseUrl = yield* Harness.BaseUrl
      const request = observation(world, 2)
      const key = randomUUID()
      // The filing is held inside its transaction by a lock the test takes on the observations.
      const locked = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* sql.withTransaction(Effect.gen(function* () {
        yield* sql`lock table executed_obs_unit in share row exclusive mode`
        yield* Deferred.succeed(locked, undefined)
        yield* Deferred.await(release)
      })).pipe(Effect.orDie, Effect.fork)
      yield* Deferred.await(locked)
      const lockWaiters = Effect.map(
        sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`,
        (rows) => rows[0]!.n
      ).pipe(Effect.orDie)
      const hangUp = new AbortController()
      const sent = fetch(`${baseUrl}/api/v1/observations`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify(request),
        signal: hangUp.signal
      }).then(() => "answered", () => "hung up")
      yield* waitUntil("the filing to wait on the lock", Effect.map(lockWaiters, (n) => n > 0), 30_000)
      hangUp.abort()
      expect(yield* Effect.promise(() => sent)).toBe("hung up")
      // The server gives the request up: its statement is cancelled and it waits no more.
      yield* waitUntil("the server to give up the filing", Effect.map(lockWaiters, (n) => n === 0), 30_000)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      yield* waitUntil(
        "the abandoned request's transaction to end",
        Effect.map(
          sql<
            { n: number }
          >`select count(*)::int as n from pg_stat_activity where state like 'idle in transaction%' and datname = current_database() and pid <> pg_backend_pid()`,
          (rows) => rows[0]!.n === 0
        ).pipe(Effect.orDie),
        30_000
      )
      expect(yield* keyRows(key)).toEqual([])
      const filed = Effect.map(
        sql<{ n: number }>`select count(*)::int as n from executed_obs_unit where id = ${request.id}`,
        (rows) => rows[0]!.n
      ).pipe(Effect.orDie)
      expect(yield* filed).toBe(0)

      const retry = yield* post("/api/v1/observations", token, request, key)
      expect([retry.status, retry.replayed]).toEqual([200, false])
      expect(yield* filed).toBe(1)
      expect(yield* keyRows(key)).toEqual([expect.objectContaining({ state: "done", statusCode: 200 })])

      // A 499 an earlier release recorded is never replayed: the key runs again.
      const [row] = yield* sql<{ scope: string }>`select scope from idempotency_key where key = ${key}`
      const old = randomUUID()
      const again = observation(world, 1)
      const hash = createHash("sha256").update(`POST\n/api/v1/observations\n${row!.scope}\n`).update(JSON.stringify(again)).digest("hex")
      yield* sql`insert into idempotency_key (scope, key, request_sha256, method, path, state, claim, status_code, body, completed_at, expires_at)
        values (${row!.scope}, ${old}, ${hash}, 'POST', '/api/v1/observations', 'done', ${randomUUID()}, 499, ${
          Buffer.alloc(0)
        }, now(), now() + interval '1 hour')`
      const rerun = yield* post("/api/v1/observations", token, again, old)
      expect([rerun.status, rerun.replayed]).toEqual([200, false])
    }))

  it.effect("the derived client sends the key of `CcatClient.idempotent` and its retry is replayed", () =>
    Effect.gen(function* () {
      const { world, token } = yield* setup
      const baseUrl = yield* Harness.BaseUrl
      const client = yield* CcatClient.make({ baseUrl, token, retry: false })
      const key = randomUUID()
      const request = { ...observation(world, 2), startAt: new Date("2026-05-01T03:00:00Z") }
      const a = yield* CcatClient.idempotent(key)(client.observations.file({ payload: request }))
      const b = yield* CcatClient.idempotent(key)(client.observations.file({ payload: request }))
      expect(b).toEqual(a)
      expect(yield* keyRows(key)).toEqual([expect.objectContaining({ state: "done", statusCode: 200 })])
    }))
})
