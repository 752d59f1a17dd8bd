/**
 * The built-in notifier's pass at a million files (the synthetic catalog, `Catalog`): every
 * statement it runs (the conditions' figures, the evaluation, the deliveries) is recorded and its
 * plan read back (`ListsExplain`). No big table is read whole, and each statement touches rows
 * bounded by the live and failed work, which the catalog keeps the same at every size. Plans and
 * rows, never timings. `CCAT_SCALE_VERBOSE=1` prints each plan's summary.
 */
import { Migrations, Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Notifier from "../../src/alerts/Notifier.js"
import * as NotifierConfig from "../../src/alerts/NotifierConfig.js"
import { LifecyclePolicy } from "../../src/lifecycle/Packaging.js"
import * as Peers from "../alerts/Peers.js"
import * as CatalogDatabase from "./CatalogDatabase.js"
import * as ListsExplain from "./ListsExplain.js"

const files = Number(process.env.CCAT_SCALE_FILES ?? 1_000_000)
const verbose = process.env.CCAT_SCALE_VERBOSE !== undefined
const recorder = new ListsExplain.Recorder()

/** Rows one statement may touch: the live tail and the failed items (a few thousand each) and the indexes leading to them. */
const bound = 60_000

const existing = process.env.CCAT_SCALE_DATABASE_URL
const database = existing === undefined
  ? CatalogDatabase.layer({ files, fileEvents: false })
  : Layer.tap(PgClient.layer(OpsDb.clientConfig(Redacted.make(existing))), (ctx) => Effect.provide(Migrations.run, ctx)).pipe(Layer.orDie)

const world = Layer.succeed(LifecyclePolicy, Topology.demo("/var/tmp/ccat-scale").policy).pipe(
  Layer.provideMerge(database),
  Layer.provideMerge(FetchHttpClient.layer),
  Layer.provide(recorder.layer)
)

describe("the notifier at scale", () => {
  it.layer(world, { timeout: 900_000 })((it) => {
    it.scoped("a pass, evaluation and deliveries, touches rows bounded by the live and failed work", () =>
      Effect.gen(function* () {
        const hook = yield* Peers.recorder()
        yield* hook.start
        const decoded = yield* NotifierConfig.decode({ sinks: [{ name: "scale-hook", type: "webhook", url: hook.url }] }, "/")
        const notifier = yield* Notifier.make(Either.getOrThrow(decoded))
        // The first pass opens what the catalog holds; the second finds it open (the steady state).
        const first = yield* recorder.during(notifier.pass)
        const second = yield* recorder.during(notifier.pass)
        const found: Array<string> = []
        for (const [what, run] of [["first pass", first], ["steady pass", second]] as const) {
          const plans = yield* ListsExplain.explain(run.statements)
          assert.isAbove(plans.length, 0)
          if (verbose) { for (const p of plans) console.log(`${what}\t${ListsExplain.describe(p)}`) }
          found.push(
            ...plans.filter((p) => p.seqScans.length > 0 || p.rowsTouched > bound).map((p) => `${what}: ${ListsExplain.describe(p)}`)
          )
        }
        assert.deepStrictEqual(found, [])
      }))
  })
})
