/**
 * Fixity audit benchmark: the real audit (`Audit.auditLocation`: due copies from the ops-db, each
 * read through the disk driver's `readEach` and hashed, verified_at recorded) against
 * `openssl dgst -sha256` over the same files in the same run, and how closely a job holds its
 * I/O budget.
 *
 *   npx tsx bench/audit.ts                                        # 16 objects of 64 MiB, 3 rounds, budget 200 MB/s
 *   CCAT_BENCH_OBJECTS=8 CCAT_BENCH_OBJECT_BYTES=134217728 CCAT_BENCH_RUNS=5 npx tsx bench/audit.ts
 *   CCAT_BENCH_BUDGET=100000000 npx tsx bench/audit.ts
 *
 * Targets: audit throughput at least 90% of openssl's; achieved bytes per second within 10% of
 * the budget. Both read the files from the page cache (one untimed read first), so the figures
 * compare hashing and the audit's own work, not the device. Beside the wall times it prints the
 * CPU seconds each used (openssl's from `times`, the audit's from this process: every thread, the
 * ops-db's server not counted), which other sessions' load on the same cores moves much less.
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { execFile } from "node:child_process"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as JobQueue from "../packages/server/src/engine/JobQueue.js"
import * as Audit from "../packages/server/src/lifecycle/Audit.js"
import { LifecyclePolicy } from "../packages/server/src/lifecycle/Packaging.js"
import * as Storages from "../packages/server/src/lifecycle/Storages.js"
import * as TopologySync from "../packages/server/src/TopologySync.js"

const MiB = 1024 * 1024
const objects = Number(process.env.CCAT_BENCH_OBJECTS ?? 16)
const objectBytes = Number(process.env.CCAT_BENCH_OBJECT_BYTES ?? 64 * MiB)
const rounds = Math.max(1, Number(process.env.CCAT_BENCH_RUNS ?? 3))
const budget = Number(process.env.CCAT_BENCH_BUDGET ?? 200e6)
const total = objects * objectBytes
/** A budget no reader reaches: the audit at full speed (0 would switch audits off). */
const unlimited = 1e15

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9
const rate = (bytes: number, s: number) => `${(bytes / s / 1e6).toFixed(0)} MB/s`
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Archived packages with real files at cologne-archive, each copy last verified long ago. */
const archiveCopies = (dir: string, world: Fixtures.World) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [archive] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-archive'`
    const files: Array<string> = []
    for (let i = 0; i < objects; i++) {
      const eou = randomUUID()
      yield* sql`insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status) values (${eou}, ${world.obsUnit.id}, now(), now(), 'completed')`
      const key = `${eou}/${world.modules[0].id}/bench-${i}.tar`
      const file = path.join(dir, "locations", "cologne-archive", key)
      const hash = createHash("sha256")
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(file), { recursive: true })
        const handle = await fs.open(file, "w")
        for (let at = 0; at < objectBytes; at += 8 * MiB) {
          const chunk = randomBytes(Math.min(8 * MiB, objectBytes - at))
          hash.update(chunk)
          await handle.write(chunk)
        }
        await handle.close()
      })
      const checksum = `sha256:${hash.digest("hex")}`
      const [pkg] = yield* sql<{ id: string }>`
        insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
        values (${eou}, ${world.modules[0].id}, ${key}, ${objectBytes}, ${checksum}, 'completed') returning id`
      yield* sql`
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        values (${pkg.id}, ${archive.id}, ${key}, ${objectBytes}, ${checksum}, 'PRESENT', now() - interval '400 days')`
      files.push(file)
    }
    return { archiveId: archive.id, files }
  })

/** Makes every archive copy due again. */
const ageCopies = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`update physical_copy set verified_at = now() - interval '400 days' where status = 'PRESENT'`
)

/**
 * `openssl dgst -sha256` over the files, run by `sh`, whose `times` then prints the CPU seconds
 * its children used (user, system): the CPU openssl spent, which other load changes much less
 * than the wall time.
 */
const openssl = (files: ReadonlyArray<string>) =>
  Effect.map(
    Effect.promise(() =>
      promisify(execFile)("sh", ["-c", 'openssl dgst -sha256 "$@" >/dev/null && times', "sh", ...files], { maxBuffer: MiB })
    ),
    ({ stdout }) => {
      const children = stdout.trim().split("\n").at(-1) ?? ""
      const [user, system] = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]))
      return (user ?? NaN) + (system ?? NaN)
    }
  )

/** CPU seconds this process used (every thread) since `from`. */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(from)
  return (used.user + used.system) / 1e6
}

/** One audit job over every copy, with the given budget (one job's worth covers them all). */
const auditAll = (archiveId: string, bytesPerSecond: number) =>
  Audit.auditLocation("cologne", archiveId, { jobSeconds: 1e9 }).pipe(
    Effect.provideService(LifecyclePolicy, Topology.demo("/unused").policy),
    Effect.provideService(Audit.LocationAudits, new Map([["cologne-archive", new Topology.LocationAuditConfig({ bytesPerSecond })]]))
  )

const program = (dir: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* TopologySync.sync(Topology.demo(dir))
    const world = yield* Fixtures.world
    const { archiveId, files } = yield* archiveCopies(dir, world)
    const [{ version }] = yield* sql<{ version: string }>`select current_setting('server_version') as version`
    const [sslVersion] = (yield* Effect.promise(() => promisify(execFile)("openssl", ["version"]))).stdout.trim().split("\n")
    console.log(
      `audit benchmark: ${objects} objects of ${objectBytes / MiB} MiB (${(total / MiB).toFixed(0)} MiB), ${rounds} rounds; ` +
        `PostgreSQL ${version}, ${sslVersion}, node ${process.version}, ${os.cpus().length} CPUs, load ${
          os.loadavg().map((l) => l.toFixed(1)).join(" ")
        }`
    )
    // untimed: the files into the page cache, openssl's and the driver's first use
    yield* openssl(files)
    yield* auditAll(archiveId, unlimited)
    const ratios: Array<number> = []
    const cpuRatios: Array<number> = []
    const times = { openssl: [] as Array<number>, audit: [] as Array<number> }
    const cpus = { openssl: [] as Array<number>, audit: [] as Array<number> }
    for (let r = 0; r < rounds; r++) {
      yield* ageCopies
      const order = r % 2 === 0 ? (["openssl", "audit"] as const) : (["audit", "openssl"] as const)
      const round: Record<string, number> = {}
      const cpu: Record<string, number> = {}
      for (const variant of order) {
        const start = process.hrtime.bigint()
        if (variant === "openssl") cpu.openssl = yield* openssl(files)
        else {
          const from = process.cpuUsage()
          const report = yield* auditAll(archiveId, unlimited)
          cpu.audit = cpuSince(from)
          if (report.good !== objects) throw new Error(`the audit found ${report.good} good copies of ${objects}`)
        }
        round[variant] = seconds(start)
        times[variant].push(round[variant])
        cpus[variant].push(cpu[variant])
      }
      ratios.push(round.openssl / round.audit)
      cpuRatios.push(cpu.openssl / cpu.audit)
      console.log(
        `round ${r + 1}: openssl ${round.openssl.toFixed(2)} s (${rate(total, round.openssl)}, ${cpu.openssl.toFixed(2)} s CPU), ` +
          `audit ${round.audit.toFixed(2)} s (${rate(total, round.audit)}, ${cpu.audit.toFixed(2)} s CPU), ` +
          `audit/openssl throughput ${(round.openssl / round.audit).toFixed(3)}, per CPU second ${(cpu.openssl / cpu.audit).toFixed(3)}`
      )
    }
    // the budget: one paced job over every copy
    yield* ageCopies
    const start = process.hrtime.bigint()
    const paced = yield* auditAll(archiveId, budget)
    const wall = seconds(start)
    const achieved = paced.bytes / (paced.elapsedMillis / 1000)
    console.log("")
    console.log("| variant | median time | throughput | median CPU |")
    console.log("|---|---|---|---|")
    console.log(
      `| openssl dgst -sha256 | ${median(times.openssl).toFixed(2)} s | ${rate(total, median(times.openssl))} | ${
        median(cpus.openssl).toFixed(2)
      } s |`
    )
    console.log(
      `| audit (unlimited budget) | ${median(times.audit).toFixed(2)} s | ${rate(total, median(times.audit))} | ${
        median(cpus.audit).toFixed(2)
      } s |`
    )
    console.log(
      `| **audit / openssl (median of per-round ratios)** | | **${median(ratios).toFixed(3)}** | ${median(cpuRatios).toFixed(3)} |`
    )
    console.log("")
    console.log(
      `budget ${rate(budget, 1)}: the job read ${paced.bytes} bytes of ${paced.copies} copies in ${
        (paced.elapsedMillis / 1000).toFixed(2)
      } s by its own clock ` +
        `(${wall.toFixed(2)} s wall): ${rate(achieved, 1)}, ${((achieved / budget - 1) * 100).toFixed(1)}% from the budget`
    )
  })

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-audit-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(
    Layer.provideMerge(OpsDb.layer({ databaseUrl: undefined, dataDir: dir, database: "ccat_bench" }))
  )
  yield* program(dir).pipe(Effect.provide(layer))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
