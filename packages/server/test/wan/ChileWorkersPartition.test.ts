/**
 * Chile's worker rides out a partition of its link to the ops-db in Cologne. The chile worker is
 * a real `ccat worker --site chile` process inside the chile namespace of an emulated link (about
 * 220 ms round trip), reaching the test's PostgreSQL through relays in cologne; the cologne worker
 * runs beside the database. Work starts, then the link is cut for longer than a job's lease and
 * than any pool timeout, observations are filed meanwhile, and the link heals. The chile worker
 * must not exit: it pauses while the database is away and resumes by itself, and the lifecycle
 * converges with every file packaged once, every package ARCHIVED, nothing empty, duplicated or
 * lost. Runs as root (CI does); without root it fails, it never skips.
 */
import { PackageManifest } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { cliBundle, decodeConfig, openJobs } from "../lifecycle/ChaosWorld.js"
import { fileObservation, observatory, syncTopology, tempDir, type WrittenFile } from "../lifecycle/LifecycleWorld.js"
import { filedOnceIn, sha256File } from "../lifecycle/support.js"
import * as PgOverWan from "./PgOverWan.js"
import * as WanWorker from "./WanWorker.js"
import * as WanWorld from "./WanWorld.js"

const started = Date.now()
const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(1)} s]`

/** How long the link stays cut: well past the lease timeout below and any pool or TCP timeout a worker sets. */
const partitionMs = 20_000

/**
 * Chile (SOURCE, BUFFER) sends to Cologne (BUFFER, one disk archive) over a local route (the data
 * path is not what is cut here, the ops-db link is); leases lapse after 9 s, so the partition
 * outlasts every lease the chile worker holds.
 */
const wanConfig = (dir: string) => {
  const root = (name: string) => ({ root: path.join(dir, "locations", name) })
  return {
    dataDir: path.join(dir, "data"),
    sites: [
      {
        name: "chile",
        shortName: "cl",
        role: "secondary",
        locations: [
          { name: "chile-source", type: "SOURCE", technology: "disk", driver: root("chile-source") },
          { name: "chile-buffer", type: "BUFFER", technology: "disk", driver: root("chile-buffer") }
        ]
      },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: root("cologne-buffer") },
          {
            name: "cologne-archive",
            type: "LONG_TERM_ARCHIVE",
            technology: "disk",
            driver: root("cologne-archive"),
            retention: { keepForever: true }
          }
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: {
      maxPackageBytes: "1 MB",
      bundleTargetBytes: "3 MB",
      bundleMaxWait: "1 seconds",
      archiveCopies: 1,
      jobHeartbeat: "3 seconds",
      jobLeaseTimeout: "9 seconds",
      audit: { inventoryEveryHours: 0 }
    }
  }
}

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0]!.n))

/** Polls `done` until it holds; fails with the workers' output after `ms`, or at once when a worker ended. */
const until = <E, R, R2>(
  what: string,
  done: Effect.Effect<boolean, E, R>,
  workers: ReadonlyArray<WanWorker.WanWorker>,
  ms: number,
  diagnose: Effect.Effect<string, never, R2>
) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    console.log(`${elapsed()} waiting for ${what}`)
    while (!(yield* done)) {
      for (const w of workers) {
        const ended = w.exited()
        if (ended !== undefined) {
          return yield* Effect.dieMessage(`worker ${w.site} ended (${ended}) while waiting for ${what}:\n${w.output().slice(-5000)}`)
        }
      }
      if (Date.now() > deadline) {
        const open = yield* Effect.orDie(openJobs)
        return yield* Effect.dieMessage(
          `${elapsed()} ${what}: not reached within ${ms} ms; open jobs ${JSON.stringify(open)}\n` +
            workers.map((w) => `--- ${w.site} ---\n${w.output().slice(-5000)}`).join("\n") + `\n${yield* diagnose}`
        )
      }
      yield* Effect.sleep("250 millis")
    }
    console.log(`${elapsed()} reached: ${what}`)
  })

describe("Chile's workers and a partition of the link to the ops-db", () => {
  it.scopedLive(
    "the chile worker pauses while the database is away, resumes by itself, and the lifecycle converges",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const [cli, world] = yield* Effect.all([cliBundle, WanWorld.make({ sshd: false })], { concurrency: 2 })
        const { url } = yield* TestDatabase.migratedDatabase
        const relay = yield* PgOverWan.make(world, url)
        const db = PgClient.layer(OpsDb.clientConfig(url)).pipe(Layer.orDie)
        console.log(`${elapsed()} link ${world.id} up; ops-db reachable from chile at ${world.cologne.address}:${PgOverWan.port}`)
        const rtt = yield* world.connectMs(PgOverWan.port, 5_000)
        assert.isDefined(rtt, "chile reaches the relay in cologne")
        assert.isAtLeast(rtt!, 180, `a connect from chile takes a round trip of the link (${rtt} ms)`)

        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const config = wanConfig(dir)
          const configFile = path.join(dir, "ccat.json")
          yield* Effect.promise(() => fs.writeFile(configFile, JSON.stringify(config, null, 2)))
          const topology = decodeConfig(config as never)
          yield* syncTopology(topology)

          const instrument = yield* observatory
          const filed: Array<WrittenFile> = []
          const fileOne = (n: number, bytes: number) =>
            Effect.map(
              fileObservation(
                topology,
                instrument,
                Array.from({ length: n }, (_, k) => ({ path: `m${k % 2}/scan-${k}.fits`, bytes, module: (k % 2) as 0 | 1 }))
              ),
              ({ files }) => void filed.push(...files)
            )
          for (let i = 0; i < 2; i++) yield* fileOne(3, 250_000 + i * 50_000)

          const [chile, cologne] = yield* Effect.all([
            WanWorker.start({
              site: "chile",
              cli: cli.file,
              configFile,
              databaseUrl: Redacted.value(relay.urlFromChile(url)),
              netns: world.chile.netns
            }),
            WanWorker.start({ site: "cologne", cli: cli.file, configFile, databaseUrl: Redacted.value(url) })
          ], { concurrency: 2 })
          const workers = [chile, cologne]
          // What a stuck run shows: the sessions PostgreSQL holds, and chile's TCP connections to the relay (unacked data, backoff).
          const diagnose = Effect.gen(function* () {
            const sessions = yield* sql<{ state: string; wait: string; secs: number; query: string }>`
            select state, coalesce(wait_event_type || ':' || wait_event, '') as wait,
              extract(epoch from now() - coalesce(query_start, backend_start))::int as secs, left(query, 120) as query
            from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() order by secs desc`
            const sockets = yield* world.exec("chile", ["ss", "-tnio", "dst", world.cologne.address], { allowFailure: true })
            return `sessions ${JSON.stringify(sessions, null, 1)}\nchile sockets:\n${sockets.stdout}`
          }).pipe(Effect.orElseSucceed(() => "(no diagnosis)"))
          console.log(`${elapsed()} workers running (chile pid ${chile.pid} in ${world.chile.netns})`)

          // Work has started at Chile: some packages exist, and not all of the filed files are in one yet.
          const packaged = count(`select count(*)::int as n from raw_data_file where state = 'packaged'`)
          yield* until("chile packaging under way", Effect.map(packaged, (n) => n > 0), workers, 60_000, diagnose)
          const atCut = yield* packaged

          yield* world.partition()
          const cutAt = Date.now()
          console.log(
            `${elapsed()} partitioned with ${atCut}/${filed.length} files packaged; chile jobs open: ${
              JSON.stringify(yield* Effect.orDie(openJobs))
            }`
          )
          // New observations arrive while Chile cannot reach the ops-db; only the chile worker can package them.
          yield* fileOne(2, 150_000)
          const duringCut = yield* packaged
          // The link stays cut for the whole period; the worker must stay up all along.
          while (Date.now() - cutAt < partitionMs) {
            assert.isUndefined(chile.exited(), `the chile worker ended during the partition:\n${chile.output().slice(-5000)}`)
            assert.isTrue(relay.alive(), "the relays run")
            yield* Effect.sleep("500 millis")
          }
          const packagedDuringCut = (yield* packaged) - duringCut
          yield* world.heal
          console.log(`${elapsed()} healed; ${packagedDuringCut} files packaged while cut (only Chile packages)`)
          assert.strictEqual(packagedDuringCut, 0, "nothing is packaged at Chile while it cannot reach the ops-db")

          const converged = Effect.gen(function* () {
            const p = yield* packaged
            const open = yield* count(`select count(*)::int as n from raw_data_package where status <> 'completed'`)
            return p === filed.length && open === 0
          })
          yield* until("every file packaged and every package ARCHIVED after the heal", converged, workers, 90_000, diagnose)
          assert.isUndefined(chile.exited(), "the chile worker never exited")
          const healedOutput = chile.output()

          // Every package complete and non-empty; every filed file in exactly one package's archive copy, intact.
          assert.strictEqual(
            yield* count(
              `select count(*)::int as n from raw_data_package p where not exists (select 1 from raw_data_file f where f.raw_data_package_id = p.id)`
            ),
            0,
            "no package without files"
          )
          const copies = yield* sql<{ packageId: string; path: string; checksum: string; root: string; pchecksum: string }>`
          select c.raw_data_package_id as package_id, c.path, c.checksum, l.driver_config->>'root' as root, p.checksum as pchecksum
          from physical_copy c join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
          where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null`
          const packages = yield* count(`select count(*)::int as n from raw_data_package`)
          assert.strictEqual(new Set(copies.map((c) => c.packageId)).size, packages, "every package has a verified archive copy")
          assert.strictEqual(copies.length, packages, "one archive copy per package, none twice")
          for (const c of copies) {
            assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(c.root, c.path))), c.pchecksum, `${c.path} verifies`)
          }
          const seen = yield* Effect.promise(() =>
            filedOnceIn(copies.map((c) => path.join(c.root, c.path)), filed, path.join(dir, "unpacked"))
          )
          seen.delete(PackageManifest.manifestName)
          assert.strictEqual(seen.size, filed.length, "no file archived that was not filed (besides each package's manifest)")
          console.log(`${elapsed()} converged: ${packages} packages, ${filed.length} files; chile worker pid ${chile.pid} still running`)
          console.log(`warnings and errors the chile worker logged: ${healedOutput.split("\n").filter((l) => /WARN|ERROR/.test(l)).length}`)
        }).pipe(Effect.provide(db))
      }),
    Number(process.env["CCAT_WAN_TEST_TIMEOUT"] ?? 175_000)
  )
})
