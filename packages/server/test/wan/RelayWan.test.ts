/**
 * The telescope-side relay across the emulated Chile ↔ Cologne link (about 220 ms round trip):
 * a real `ccat relay` in chile's namespace, a real `ccat serve` in cologne's, instruments (the
 * real `@ccat/client`, retrying as an outbox does) filing through the relay all along. The link
 * is cut for two minutes; meanwhile the relay is SIGKILLed and started again (offline, from its
 * stored reference data) and the main is SIGKILLed and started again; then the link heals.
 * Every filing the relay acknowledged arrives at the main exactly once and in the relay's
 * acceptance order, nothing is lost or duplicated, the backlog shows in the relay's `/metrics`
 * during the cut and drains to 0 after it, and forwarding resumes soon after the heal (fresh
 * connections, not a socket in TCP's retransmission backoff). Last, a token revoked at the main
 * stops working at the relay within the sync interval, across the link.
 * Runs as root (CI does); without root it fails, it never skips.
 */
import { CcatClient } from "@ccat/client"
import { Fixtures } from "@ccat/core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { randomBytes, randomUUID } from "node:crypto"
import * as Harness from "../ApiHarness.js"
import * as RelayWanWorld from "./RelayWanWorld.js"

const started = Date.now()
const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(1)} s]`

/** How long the link stays cut. */
const partitionMs = Number(process.env["CCAT_RELAY_WAN_PARTITION_MS"] ?? 120_000)

/** The relay's timings: short, so the test sees the heal, the sync and a revocation quickly. */
const relayEnv = {
  CCAT_RELAY_SYNC_INTERVAL: "2 seconds",
  CCAT_RELAY_MAX_BACKOFF: "4 seconds",
  CCAT_RELAY_REQUEST_TIMEOUT: "15 seconds",
  CCAT_RELAY_CONNECT_TIMEOUT: "3 seconds"
}

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

/** One filing an instrument got an answer for, in the order it got them. */
interface Acknowledged {
  readonly instrument: string
  readonly observationId: string
  readonly kind: "file" | "addFiles" | "close"
}

/** Polls `check` every 250 ms until it answers a value; dies naming `what` after `ms`. */
const until = <A, E, R>(what: string, ms: number, check: Effect.Effect<A | undefined, E, R>) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (true) {
      const value = yield* check
      if (value !== undefined) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${elapsed()} timed out after ${ms} ms waiting for ${what}`)
      yield* Effect.sleep("250 millis")
    }
  })

/** The relay's backlog figures from its `/metrics`, or undefined while it does not answer. */
const metrics = (relayUrl: string) =>
  Effect.promise(async () => {
    try {
      const text = await (await fetch(`${relayUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text()
      const value = (name: string) => Number(/^(\S+) (\S+)$/m.exec(text.split("\n").find((l) => l.startsWith(`${name} `)) ?? "")?.[2])
      return {
        backlog: value("ccat_relay_backlog_filings"),
        ageSeconds: value("ccat_relay_backlog_oldest_age_seconds"),
        forwarded: value("ccat_relay_forwarded_filings")
      }
    } catch {
      return undefined
    }
  })

describe("the relay across the emulated link", () => {
  it.scopedLive(
    "filings through a partition of two minutes, a SIGKILLed relay and a restarted main arrive once and in order; a revoked token stops at the relay",
    () =>
      Effect.gen(function* () {
        const w = yield* RelayWanWorld.make()
        console.log(`${elapsed()} link ${w.wan.id} up; main ${w.mainUrl}`)

        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const world = yield* Fixtures.world.pipe(Effect.orDie)
          const relayName = `relay-${Fixtures.suffix()}`
          const relayToken = yield* Harness.tokenFor({ role: "admin", name: relayName })
          const instruments = yield* Effect.forEach([0, 1], (i) => {
            const name = `instrument-${i}-${Fixtures.suffix()}`
            return Effect.map(Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id], name }), (token) => ({
              name,
              token
            }))
          })
          yield* Effect.promise(() => w.main.start())
          const rtt = yield* w.wan.connectMs(RelayWanWorld.mainPort, 5_000).pipe(Effect.orDie)
          console.log(`${elapsed()} a TCP connect from chile to the main takes ${rtt} ms`)
          assert.isAtLeast(rtt ?? 0, 180, "the main is a round trip of the link away")
          const relay = w.relay(relayToken, relayEnv)
          yield* Effect.promise(() => relay.start())
          console.log(`${elapsed()} main and relay running`)
          yield* until(
            "the relay to know the instruments' tokens",
            30_000,
            Effect.promise(() =>
              fetch(`${w.relayUrl}/api/v1/relay/status`, { headers: { authorization: `Bearer ${instruments[1]!.token}` } }).then(
                (r) => (r.status === 200 ? true : undefined),
                () => undefined
              )
            )
          )

          // Instruments file observation after observation through the relay, each request under
          // its own key and retried until answered, as an outbox does.
          const acknowledged: Array<Acknowledged> = []
          let filing = true
          const instrument = (who: { readonly name: string; readonly token: string }) =>
            Effect.gen(function* () {
              const client = yield* CcatClient.make({ baseUrl: w.relayUrl, token: who.token, retry: { times: 10_000, cap: "1 seconds" } })
              const answered = <A, E>(kind: Acknowledged["kind"], observationId: string, call: Effect.Effect<A, E>) =>
                CcatClient.idempotent(randomUUID())(call).pipe(
                  Effect.timeoutFail({
                    duration: "60 seconds",
                    onTimeout: () => new Error(`${who.name}: ${kind} of ${observationId} not answered within 60 s`)
                  }),
                  Effect.orDie,
                  Effect.tap(() => Effect.sync(() => acknowledged.push({ instrument: who.name, observationId, kind })))
                )
              const file = (n: number) => ({
                id: randomUUID(),
                module: "280GHz",
                relativePath: `wan-${randomUUID()}/f${n}.fits`,
                sizeBytes: 1000 + n,
                checksum: sha()
              })
              while (filing) {
                const id = randomUUID()
                yield* answered(
                  "file",
                  id,
                  client.observations.file({
                    payload: {
                      id,
                      obsUnitId: world.obsUnit.id,
                      startAt: new Date("2026-05-01T03:00:00Z"),
                      sourceLocation: world.source.name,
                      files: [file(0), file(1)]
                    } as any
                  })
                )
                yield* answered(
                  "addFiles",
                  id,
                  client.observations.addFiles({
                    path: { id: id as any },
                    payload: { sourceLocation: world.source.name, files: [file(2)] } as any
                  })
                )
                yield* answered(
                  "close",
                  id,
                  client.observations.close({
                    path: { id: id as any },
                    payload: { endAt: new Date("2026-05-01T04:00:00Z"), status: "completed" }
                  })
                )
                // An observation every few seconds per instrument: a backlog the link drains in well under a minute.
                yield* Effect.sleep("6 seconds")
              }
            }).pipe(Effect.provide(FetchHttpClient.layer))
          const fibers = yield* Effect.forEach(instruments, (i) => Effect.fork(instrument(i)))

          yield* until(
            "filings to reach the main before the cut",
            60_000,
            Effect.map(metrics(w.relayUrl), (m) => (m !== undefined && m.forwarded >= 6 ? true : undefined))
          )
          yield* w.wan.partition()
          const cutAt = Date.now()
          console.log(`${elapsed()} partitioned with ${acknowledged.length} filings acknowledged`)

          const during = yield* until(
            "the backlog and its age in /metrics",
            60_000,
            Effect.map(metrics(w.relayUrl), (m) => (m !== undefined && m.backlog >= 3 && m.ageSeconds >= 10 ? m : undefined))
          )
          console.log(`${elapsed()} /metrics during the cut: ${JSON.stringify(during)}`)
          yield* Effect.promise(() => relay.kill())
          yield* Effect.promise(() => relay.start())
          console.log(`${elapsed()} relay SIGKILLed and started again, offline`)
          yield* until(
            "the restarted relay to take filings",
            60_000,
            Effect.map(metrics(w.relayUrl), (m) => (m !== undefined && m.backlog > during.backlog ? true : undefined))
          )
          yield* Effect.promise(() => w.main.kill())
          yield* Effect.promise(() => w.main.start())
          console.log(`${elapsed()} main SIGKILLed and started again`)
          while (Date.now() - cutAt < partitionMs) {
            assert.isUndefined(
              yield* Effect.forEach(fibers, (f) => f.poll).pipe(Effect.map((ps) => ps.find((p) => p._tag === "Some"))),
              "the instruments keep filing"
            )
            yield* Effect.sleep("1 second")
          }
          const atHeal = yield* until("/metrics before the heal", 10_000, metrics(w.relayUrl))
          yield* w.wan.heal
          const healedAt = Date.now()
          console.log(`${elapsed()} healed after ${((healedAt - cutAt) / 1000).toFixed(0)} s; /metrics: ${JSON.stringify(atHeal)}`)
          assert.isAtLeast(atHeal.backlog, 10, "a backlog built up during the cut")
          assert.isAtLeast(atHeal.ageSeconds, 100, "its oldest filing waited about as long as the cut")
          yield* until(
            "the first forward after the heal",
            60_000,
            Effect.map(metrics(w.relayUrl), (m) => (m !== undefined && m.forwarded > atHeal.forwarded ? true : undefined))
          )
          const resumedMs = Date.now() - healedAt
          console.log(`${elapsed()} forwarding resumed ${resumedMs} ms after the heal`)

          filing = false
          yield* Effect.forEach(fibers, Fiber.join)
          const drained = yield* until(
            "the backlog to drain",
            120_000,
            Effect.map(metrics(w.relayUrl), (m) => (m !== undefined && m.backlog === 0 ? m : undefined))
          )
          const drainMs = Date.now() - healedAt
          console.log(
            `${elapsed()} drained ${drainMs} ms after the heal: ${JSON.stringify(drained)}; ${acknowledged.length} filings acknowledged`
          )
          assert.strictEqual(drained.ageSeconds, 0, "no backlog age once drained")
          // Resuming waits at most one backoff and one connect timeout, not TCP's retransmission backoff.
          assert.isBelow(resumedMs, 20_000, `forwarding resumed ${resumedMs} ms after the heal`)

          // What the relay holds: every acknowledged filing, once, all forwarded.
          const relayRows = yield* Effect.flatMap(
            SqlClient.SqlClient,
            (r) => r<{ seq: string; id: string; kind: string; observationId: string; accountName: string; state: string }>`
            select seq, id, kind, observation_id, account_name, state from relay.filing order by seq`
          ).pipe(Effect.provide(w.relayDb), Effect.orDie)
          const key = (a: { readonly observationId: string; readonly kind: string }) => `${a.observationId}/${a.kind}`
          assert.deepStrictEqual(relayRows.filter((r) => r.state !== "forwarded"), [], "every filing forwarded, none refused")
          assert.strictEqual(new Set(relayRows.map(key)).size, relayRows.length, "no filing twice at the relay")
          assert.deepStrictEqual(
            new Set(relayRows.map(key)),
            new Set(acknowledged.map(key)),
            "the relay holds exactly the acknowledged filings"
          )
          for (const who of instruments) {
            assert.deepStrictEqual(
              relayRows.filter((r) => r.accountName === who.name).map(key),
              acknowledged.filter((a) => a.instrument === who.name).map(key),
              `${who.name}'s filings in the order it got their answers`
            )
          }

          // What the main holds: each filing once, in the relay's order, events naming both accounts.
          const keys = yield* sql<{ key: string }>`select key from idempotency_key where key = any(${
            relayRows.map((r) => r.id)
          }::text[]) order by created_at, key`
          assert.deepStrictEqual(
            keys.map((k) => k.key),
            relayRows.map((r) => r.id),
            "the main took every filing, in the relay's acceptance order"
          )
          const observations = [...new Set(acknowledged.map((a) => a.observationId))]
          const closed = new Set(acknowledged.filter((a) => a.kind === "close").map((a) => a.observationId))
          const added = new Set(acknowledged.filter((a) => a.kind === "addFiles").map((a) => a.observationId))
          const [counts] = yield* sql<
            {
              observations: number
              closed: number
              files: number
              fileEvents: number
              filedEvents: number
              closeEvents: number
              relayed: number
            }
          >`
          select (select count(*)::int from executed_obs_unit where id = any(${observations}::uuid[])) as observations,
            (select count(*)::int from executed_obs_unit where id = any(${observations}::uuid[]) and end_at is not null) as closed,
            (select count(*)::int from raw_data_file where executed_obs_unit_id = any(${observations}::uuid[])) as files,
            (select count(*)::int from event_log e join raw_data_file f on f.id = e.entity_id
              where f.executed_obs_unit_id = any(${observations}::uuid[]) and e.from_state is null) as file_events,
            (select count(*)::int from event_log where entity_kind = 'ExecutedObsUnit' and entity_id = any(${observations}::uuid[]) and from_state is null) as filed_events,
            (select count(*)::int from event_log where entity_kind = 'ExecutedObsUnit' and entity_id = any(${observations}::uuid[]) and from_state is not null) as close_events,
            (select count(*)::int from event_log e join raw_data_file f on f.id = e.entity_id
              where f.executed_obs_unit_id = any(${observations}::uuid[]) and e.actor = ${relayName} and e.details->>'onBehalfOf' like 'instrument-%') as relayed`
          const files = observations.length * 2 + added.size
          assert.deepStrictEqual(counts, {
            observations: observations.length,
            closed: closed.size,
            files,
            fileEvents: files,
            filedEvents: observations.length,
            closeEvents: closed.size,
            relayed: files
          })
          console.log(
            `${elapsed()} ${relayRows.length} filings (${observations.length} observations, ${files} files) arrived once and in order`
          )

          // A token revoked at the main stops working at the relay within the sync interval.
          const prefix = instruments[0]!.token.split("_")[1]
          yield* sql`update api_token set revoked_at = now() where prefix = ${prefix}`
          const revokedAt = Date.now()
          const refusal = yield* until(
            "the relay to refuse the revoked token",
            30_000,
            Effect.promise(() =>
              fetch(`${w.relayUrl}/api/v1/relay/status`, { headers: { authorization: `Bearer ${instruments[0]!.token}` } })
                .then(async (r) => (r.status === 401 ? await r.text() : undefined), () => undefined)
            )
          )
          const delay = Date.now() - revokedAt
          console.log(
            `${elapsed()} revocation took effect at the relay ${delay} ms after it was made at the main (sync interval 2 s, 220 ms away)`
          )
          assert.include(refusal, "Revoked")
          assert.isBelow(delay, 2_000 + 5_000, "within the sync interval and one pull across the link")
        }).pipe(Effect.provide(w.mainDb))
      }),
    Number(process.env["CCAT_RELAY_WAN_TEST_TIMEOUT"] ?? 290_000)
  )
})
