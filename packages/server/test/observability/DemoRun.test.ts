/**
 * `/metrics` during a demo run: the real server and every stage of both demo sites on one ops-db,
 * files filed at Chile flowing to Cologne's archive. Every scrape parses strictly, counters never
 * go down, and the series move with the data: filed → packaged, WAITING/TRANSFERRING → ARCHIVED,
 * bytes over the chile → cologne hop, copies in the archive.
 */
import { assert, layer as withLayer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Harness from "../ApiHarness.js"
import * as World from "../lifecycle/LifecycleWorld.js"
import { type Exposition, parsePrometheus, sumOf, valueOf } from "./Formats.js"

const scrape = Effect.gen(function* () {
  const baseUrl = yield* Harness.BaseUrl
  const text = yield* Effect.promise(() => fetch(`${baseUrl}/metrics`).then((r) => r.text()))
  return parsePrometheus(text)
})

withLayer(Layer.merge(Harness.layer(), World.layer), { timeout: 180_000, excludeTestServices: true })("a demo run", (it) => {
  it.scoped("moves the series from filed to archived, with counters that only grow", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const dir = yield* World.tempDir
      const topology = World.topologyIn(dir)
      yield* World.syncTopology(topology)
      const obs = yield* World.observatory
      const { files } = yield* World.fileObservation(topology, obs, [
        { path: "det/a.fits", bytes: 400_000 },
        { path: "det/b.fits", bytes: 700_000 },
        { path: "det/c.fits", bytes: 50_000 },
        { path: "hk/h.dat", bytes: 2000, module: 1 }
      ])
      const first = yield* scrape
      assert.strictEqual(valueOf(first, "ccat_raw_data_files", { state: "filed" }), files.length)

      const seen: Array<Exposition> = [first]
      const sampler = yield* Effect.fork(
        Effect.forever(Effect.zipRight(Effect.sleep("250 millis"), Effect.map(scrape, (e) => void seen.push(e))))
      )
      const archived = Effect.map(
        sql<{ open: number; done: number }>`
          select count(*) filter (where status <> 'completed')::int as open, count(*) filter (where status = 'completed')::int as done
          from raw_data_package`,
        ([r]) => r!.open === 0 && r!.done > 0
      )
      yield* World.runUntil([["chile", Stages.all], ["cologne", Stages.all]], archived, 150_000).pipe(
        Effect.provide(World.policyLayer(topology))
      )
      yield* Fiber.interrupt(sampler)
      const [{ packages }] = yield* sql<{ packages: number }>`select count(*)::int as packages from raw_data_package`
      // The server reuses a collection for 5 s; scrape until it shows the end of the run.
      let last = yield* scrape
      const deadline = Date.now() + 20_000
      while (valueOf(last, "ccat_raw_data_packages", { status: "completed" }) !== packages && Date.now() < deadline) {
        yield* Effect.sleep("500 millis")
        last = yield* scrape
      }
      seen.push(last)
      assert.strictEqual(valueOf(last, "ccat_raw_data_files", { state: "filed" }), 0)
      assert.strictEqual(valueOf(last, "ccat_raw_data_files", { state: "packaged" }), files.length)
      assert.strictEqual(valueOf(last, "ccat_raw_data_packages", { status: "completed" }), packages)
      assert.strictEqual(valueOf(last, "ccat_package_archive_duration_seconds_count"), packages)
      assert.strictEqual(
        valueOf(last, "ccat_physical_copies", { location: "cologne-archive", kind: "package", status: "PRESENT" }),
        packages
      )
      const hop = { from: "chile", to: "cologne", adapter: "local" }
      assert.isAbove(valueOf(last, "ccat_transfer_bytes_total", hop)!, files.reduce((a, f) => a + f.sizeBytes, 0))
      assert.isAtLeast(valueOf(last, "ccat_transfer_attempts", { ...hop, status: "completed" })!, 1)
      assert.isAbove(valueOf(last, "ccat_transfer_last_throughput_bytes_per_second", hop)!, 0)
      assert.isAbove(sumOf(last, "ccat_queue_jobs", { queue: "cologne.archive" }), 0)

      // Counters only grow from scrape to scrape; the pipeline was seen in more than one shape.
      for (let i = 1; i < seen.length; i++) {
        const before = valueOf(seen[i - 1]!, "ccat_transfer_bytes_total", hop) ?? 0
        assert.isAtLeast(valueOf(seen[i]!, "ccat_transfer_bytes_total", hop) ?? 0, before)
      }
      const shapes = new Set(
        seen.map((e) =>
          ["filed", "packaged"].map((state) => valueOf(e, "ccat_raw_data_files", { state })).join("/") + "|" +
          ["pending", "scheduled", "in_progress", "completed"].map((status) => valueOf(e, "ccat_raw_data_packages", { status })).join("/")
        )
      )
      assert.isAtLeast(shapes.size, 2)
    }))
})
