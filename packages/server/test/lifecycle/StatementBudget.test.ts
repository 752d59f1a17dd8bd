/**
 * The statements each Chile-side job runs against the ops-db, held to a budget: at the telescope
 * every statement is a round trip of about 220 ms, so a job that grows by a statement is slower
 * there by that much. Counted from the spans `@effect/sql` opens for the job's own fibers (each
 * executed statement, and a begin and an end per transaction or savepoint), with a real
 * PostgreSQL and the real stages; never from timings.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Tracer from "effect/Tracer"
import { JobQueue } from "../../src/engine/JobQueue.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import { queueName } from "../../src/lifecycle/Stage.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import { fileObservation, layer, observatory, policyLayer, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

/** Statements a job ran, and their texts (for the message when a budget is exceeded). */
interface Count {
  readonly statements: number
  readonly texts: ReadonlyArray<string>
}

/**
 * Runs `effect` with a tracer that counts the ops-db statements of its fibers and of the fibers
 * they start: each `sql.execute` span is one statement, each `sql.transaction` span two (begin or
 * savepoint, and commit, release or rollback).
 */
const counted = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const inner = yield* Effect.tracer
    const spans: Array<Tracer.Span | "transaction"> = []
    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = inner.span(name, parent, context, links, startTime, kind, options)
        if (name === "sql.execute") spans.push(span)
        else if (name === "sql.transaction") spans.push("transaction")
        return span
      },
      context: inner.context
    })
    const result = yield* Effect.withTracer(effect, tracer)
    // the statement's text is an attribute set once it is compiled
    const texts = spans.map((
      s
    ) => (s === "transaction" ? "begin … commit" : String(s.attributes.get("db.query.text") ?? "?").replace(/\s+/g, " ").slice(0, 100)))
    const statements = spans.reduce((n, s) => n + (s === "transaction" ? 2 : 1), 0)
    return [result, { statements, texts } satisfies Count] as const
  })

/** Holds a job to its budget; `CCAT_SHOW_STATEMENTS=1` prints every job's statements. */
const within = (what: string, count: Count, budget: number) => {
  const listing = `${what} ran ${count.statements} statements, budget ${budget}:\n  ${count.texts.join("\n  ")}`
  if (process.env["CCAT_SHOW_STATEMENTS"] === "1") console.log(listing)
  assert.isAtMost(count.statements, budget, listing)
}

describe("Chile-side statement budgets", () => {
  it.scopedLive("packaging, bundling and sending one observation stay within their statements per job", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const jobs = yield* JobQueue
      const dir = yield* tempDir
      // one package whose size fills a bundle at once: no wait for a partial bundle
      const topology = topologyIn(dir, { bundleTargetBytes: "10 kB" })
      yield* syncTopology(topology)
      const obs = yield* observatory
      yield* fileObservation(topology, obs, [1, 2, 3, 4].map((i) => ({ path: `det/f${i}.fits`, bytes: 20_000 })))
      yield* jobs.ensureQueue(queueName("chile", Packaging.name), Packaging.stage.queue)
      yield* jobs.ensureQueue(queueName("chile", Bundling.name), Routes.queues.bundle)
      yield* jobs.ensureQueue(queueName("chile", Transfer.name), Routes.queues.transfer)
      yield* jobs.ensureQueue(queueName("cologne", "arrive"), Routes.queues.arrive)
      const run = <A, E, R>(what: string, budget: number, effect: Effect.Effect<A, E, R>) =>
        Effect.tap(counted(effect), ([, count]) => Effect.sync(() => within(what, count, budget)))

      // Packaging: the planner claims the package (its row, events, files and job in one statement).
      const [claimed] = yield* run("the packaging planner", 4, Packaging.plan("chile"))
      assert.strictEqual(claimed, 1)
      const [pkg] = yield* sql<{ id: string }>`select id from raw_data_package`
      // the job the claim enqueued is pg-boss's own, as its send makes it: the queue's retries, expiry and policy
      const queued = yield* sql<
        {
          packageId: string
          singletonKey: string
          retryLimit: number
          retryBackoff: boolean
          expire: number
          policy: string
          state: string
        }
      >`
        select j.data->>'packageId' as package_id, j.singleton_key, j.retry_limit, j.retry_backoff,
          extract(epoch from j.expire_in)::int as expire, j.policy, j.state::text as state
        from pgboss.job j where j.name = ${queueName("chile", Packaging.name)}`
      assert.deepStrictEqual(queued, [{
        packageId: pkg!.id,
        singletonKey: pkg!.id,
        retryLimit: 20,
        retryBackoff: true,
        expire: 6 * 3600,
        policy: "stately",
        state: "created"
      }])
      yield* run("a packaging job", 3, Packaging.work("chile", { packageId: pkg!.id }))

      // Bundling: the planner's round (recoveries probed in one statement), then the bundle's job.
      const [bundled] = yield* run("the bundling planner", 10, Bundling.plan("chile"))
      assert.strictEqual(bundled, 1)
      const [bundle] = yield* sql<{ id: string }>`select id from data_transfer_package`
      yield* run("a bundling job", 5, Bundling.work("chile", { bundleId: bundle!.id }))
      // A round with nothing to do opens no transaction.
      const [idle] = yield* run("an idle bundling planner", 5, Bundling.plan("chile"))
      assert.strictEqual(idle, 0)

      // Sending: one attempt, delivered. Its four reads go out together, the route choice is one
      // statement, the lock, checks and attempt one query string, the delivery one statement, and
      // the place it freed on the route handed to the bundles waiting for one, one more.
      yield* run("a transfer job", 8, Transfer.work("chile", { bundleId: bundle!.id }))
      const delivered = yield* sql<{ n: number }>`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where c.data_transfer_package_id = ${bundle!.id} and l.name = 'cologne-buffer' and c.status = 'PRESENT'`
      assert.strictEqual(delivered[0]!.n, 1)
      // Each step enqueued the next one's job in the statement that recorded it.
      const next = yield* sql<{ name: string; key: string }>`
        select name, coalesce(data->>'packageId', data->>'bundleId') as key from pgboss.job order by created_on, name`
      assert.deepStrictEqual(next.map((j) => [j.name, j.key]), [
        [queueName("chile", Packaging.name), pkg!.id],
        [queueName("chile", Bundling.name), bundle!.id],
        [queueName("chile", Transfer.name), bundle!.id],
        [queueName("cologne", "arrive"), bundle!.id]
      ])

      // The steps one statement makes still read one after the other in the event log.
      const history = (kind: string, id: string) =>
        sql<{ step: string }>`
          select coalesce(from_state, '-') || '>' || to_state as step from event_log
          where entity_kind = ${kind}::entity_kind and entity_id = ${id} order by id`.pipe(Effect.map((rows) => rows.map((r) => r.step)))
      const [attempt] = yield* sql<{ id: string; status: string; startedAt: Date | null }>`
        select id, status::text as status, started_at from data_transfer where data_transfer_package_id = ${bundle!.id}`
      assert.strictEqual(attempt!.status, "completed")
      assert.isNotNull(attempt!.startedAt)
      assert.deepStrictEqual(yield* history("DataTransfer", attempt!.id), [
        "->pending",
        "pending>scheduled",
        "scheduled>in_progress",
        "in_progress>completed"
      ])
      assert.deepStrictEqual((yield* history("DataTransferPackage", bundle!.id)).slice(0, 3), [
        "->pending",
        "pending>scheduled",
        "scheduled>in_progress"
      ])
      assert.deepStrictEqual((yield* history("RawDataPackage", pkg!.id)).slice(0, 3), [
        "->pending",
        "pending>scheduled",
        "scheduled>in_progress"
      ])
      const [scheduled] = yield* sql<{ details: { readonly packages?: number } }>`
        select details from event_log where entity_kind = 'DataTransferPackage' and entity_id = ${bundle!.id} and to_state = 'scheduled'`
      assert.strictEqual(scheduled!.details.packages, 1)
      const members = yield* sql<
        { n: number }
      >`select count(*)::int as n from data_transfer_package_member where data_transfer_package_id = ${bundle!.id}`
      assert.strictEqual(members[0]!.n, 1)
    }).pipe(Effect.provide(policyLayer(topologyIn("/nonexistent", { bundleTargetBytes: "10 kB" }))), Effect.provide(layer)), 120_000)
})
