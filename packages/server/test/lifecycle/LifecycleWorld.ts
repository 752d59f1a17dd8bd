/**
 * A real lifecycle world for tests: a fresh ops-db with the demo topology on temporary folders,
 * the job engine, storages, an observatory to file against, and real files written at the
 * SOURCE location and filed the way an instrument files them.
 */
import { Checksum, Ids, Repositories, Topology } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { assert } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import * as Engine from "../../src/lifecycle/Engine.js"
import { LifecyclePolicy } from "../../src/lifecycle/Packaging.js"
import type { Stage } from "../../src/lifecycle/Stage.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as TopologySync from "../../src/TopologySync.js"
import { gnuTar, sha256File } from "./support.js"

/** The demo topology rooted in a temporary folder, with small packages for tests; `routes` replaces the demo's. */
export const topologyIn = (
  dir: string,
  policy: Record<string, unknown> = {},
  routes?: ReadonlyArray<Record<string, unknown>>
): Topology.Topology => {
  const demo = Topology.demo(dir)
  const decoded = Topology.decode({
    sites: demo.sites.map((s) => ({
      name: s.name,
      shortName: s.shortName,
      role: s.role,
      locations: s.locations.map((l) => ({
        name: l.name,
        type: l.type,
        technology: l.technology,
        driver: l.driver,
        priority: l.priority,
        retention: l.retention
      }))
    })),
    routes: routes ?? demo.routes.map((r) => ({ from: r.from, to: r.to, adapter: r.adapter })),
    policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds", ...policy }
  })
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

/** Chile → Cornell relayed through Cologne, which has a buffer but no archive. */
export const relayTopology = (dir: string) => {
  const disk = (name: string, type: string) => ({ name, type, technology: "disk", driver: { root: `${dir}/locations/${name}` } })
  const decoded = Topology.decode({
    sites: [
      { name: "chile", shortName: "cl", locations: [disk("chile-source", "SOURCE"), disk("chile-buffer", "BUFFER")] },
      { name: "cologne", shortName: "col", locations: [disk("cologne-buffer", "BUFFER")] },
      {
        name: "cornell",
        shortName: "cor",
        locations: [disk("cornell-buffer", "BUFFER"), {
          ...disk("cornell-archive", "LONG_TERM_ARCHIVE"),
          retention: { keepForever: true }
        }]
      }
    ],
    routes: [{ from: "chile", to: "cornell", via: ["cologne"], adapter: "local" }],
    policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds" }
  })
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

/**
 * Spoils a copy's bytes at a disk location of the test's folder (CORRUPT: one byte flipped;
 * MISSING: the file removed) and records the finding as an audit would.
 */
export const spoilCopy = (
  dir: string,
  location: string,
  copy: { readonly id: string; readonly path: string },
  finding: "CORRUPT" | "MISSING"
) =>
  Effect.gen(function* () {
    const file = path.join(dir, "locations", location, copy.path)
    if (finding === "CORRUPT") {
      const bytes = yield* Effect.promise(() => fs.readFile(file))
      bytes[bytes.length >> 1] ^= 0x01
      yield* Effect.promise(() => fs.writeFile(file, bytes))
    } else {
      yield* Effect.promise(() => fs.rm(file))
    }
    assert.isTrue(yield* CopyFindings.mark(copy.id, finding, { actor: "worker:test", by: "audit", detail: "seen by the test" }))
  })

/** A temporary folder, removed with the scope. */
export const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-lifecycle-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** Database, job engine and storages for lifecycle tests; the topology comes per test. */
export const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(TestDatabase.layer))

/** The policy of a topology, as the stages read it. */
export const policyLayer = (t: Topology.Topology) => Layer.succeed(LifecyclePolicy, t.policy)

/** Observational rows to file against. */
export const observatory = Effect.gen(function* () {
  const s = randomBytes(3).toString("hex")
  const observatory = yield* Repositories.observatories.insert({ name: `CCAT ${s}`, description: "" })
  const telescope = yield* Repositories.telescopes.insert({ observatoryId: observatory.id, name: "FYST", description: "" })
  const instrument = yield* Repositories.instruments.insert({ telescopeId: telescope.id, name: `Prime-Cam ${s}`, description: "" })
  const m1 = yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "280GHz", description: "" })
  const m2 = yield* Repositories.instrumentModules.insert({ instrumentId: instrument.id, name: "350GHz", description: "" })
  const program = yield* Repositories.observingPrograms.insert({ name: `deep-field-${s}`, title: "Deep field" })
  const obsUnit = yield* Repositories.obsUnits.insert({
    observingProgramId: program.id,
    instrumentId: instrument.id,
    name: "deep56",
    target: "Deep56",
    plannedDurationSeconds: 3600,
    configuration: {}
  })
  return { instrument, modules: [m1, m2] as const, program, obsUnit }
})

/** A file an instrument wrote: its row and where its bytes are. */
export interface WrittenFile {
  readonly id: Ids.RawDataFileId
  readonly relativePath: string
  readonly absolutePath: string
  readonly checksum: Checksum.Checksum
  readonly sizeBytes: number
}

/** Writes files at the SOURCE root and files them under a closed observation. */
export const fileObservation = (
  topology: Topology.Topology,
  obs: Effect.Effect.Success<typeof observatory>,
  files: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly module?: 0 | 1 }>
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const sourceConfig = topology.sites[0].locations.find((l) => l.type === "SOURCE")!
    const root = sourceConfig.driver.root as string
    const [source] = yield* sql<{ id: string }>`select id from data_location where name = ${sourceConfig.name}`
    const eou = yield* Repositories.executedObsUnits.insert({
      id: randomUUID() as Ids.ExecutedObsUnitId,
      obsUnitId: obs.obsUnit.id,
      startAt: DateTime.unsafeMake("2026-05-01T03:00:00Z"),
      endAt: DateTime.unsafeMake("2026-05-01T04:00:00Z"),
      status: "completed",
      conditions: {},
      quality: "unassessed",
      metadata: {}
    })
    const written: Array<WrittenFile> = []
    for (const f of files) {
      const relativePath = `${eou.id}/${f.path}`
      const absolutePath = path.join(root, relativePath)
      const bytes = randomBytes(f.bytes)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(absolutePath), { recursive: true })
        await fs.writeFile(absolutePath, bytes)
      })
      const checksum = Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))
      const row = yield* Repositories.rawDataFiles.insert({
        id: randomUUID() as Ids.RawDataFileId,
        executedObsUnitId: eou.id,
        instrumentModuleId: obs.modules[f.module ?? 0].id,
        relativePath: relativePath as never,
        sizeBytes: f.bytes,
        checksum,
        sourceLocationId: source.id as Ids.DataLocationId
      })
      written.push({ id: row.id, relativePath, absolutePath, checksum, sizeBytes: f.bytes })
    }
    return { eou, files: written }
  })

/** Writes the topology into the ops-db. */
export const syncTopology = (t: Topology.Topology) => TopologySync.sync(t)

/**
 * Runs the given sites' stages (each entry one `runSite`, so a site listed twice has two racing
 * workers) until `done` holds, polling the ops-db; fails after `timeoutMs`.
 */
export const runUntil = <E, R, RS>(
  sites: ReadonlyArray<readonly [string, ReadonlyArray<Stage<RS>>]>,
  done: Effect.Effect<boolean, E, R>,
  timeoutMs = 60_000
): Effect.Effect<void, unknown, R | RS | JobQueue.JobQueue | SqlClient.SqlClient> =>
  Effect.scoped(
    Effect.gen(function* () {
      for (const [site, stages] of sites) {
        yield* Engine.runSite(site, stages, { plannerInterval: "300 millis", pollingIntervalSeconds: 0.5 })
      }
      const deadline = Date.now() + timeoutMs
      while (!(yield* done)) {
        if (Date.now() > deadline) return yield* Effect.dieMessage("the lifecycle did not get there in time")
        yield* Effect.sleep("150 millis")
      }
    })
  )

/** Every package of the ops-db PRESENT and verified in cologne-buffer, every bundle completed. */
export const allArrived = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ packages: number; arrived: number; open: number }>`
    select (select count(*)::int from raw_data_package where size_bytes is not null) as packages,
      (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id
       where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT' and c.verified_at is not null) as arrived,
      (select count(*)::int from data_transfer_package where status <> 'completed') as open`).pipe(
  Effect.map(([r]) => r.packages > 0 && r.arrived === r.packages && r.open === 0)
)

/**
 * Unpacks every package tar PRESENT at `location` (cologne-buffer unless named) with GNU tar,
 * checks each tar against its copy's checksum and each file against what was filed.
 */
export const assertByteIdentical = (
  dir: string,
  files: ReadonlyArray<{ readonly relativePath: string; readonly checksum: string }>,
  location = "cologne-buffer"
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const copies = yield* sql<{ path: string; checksum: string }>`
      select c.path, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
      where l.name = ${location} and c.raw_data_package_id is not null and c.status = 'PRESENT'`
    const root = path.join(dir, "locations", location)
    const out = path.join(dir, "unpacked")
    yield* Effect.promise(() => fs.mkdir(out, { recursive: true }))
    for (const c of copies) {
      assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(root, c.path))), c.checksum)
      yield* Effect.promise(() => gnuTar(["-xf", path.join(root, c.path), "-C", out]))
    }
    for (const f of files) assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(out, f.relativePath))), f.checksum)
  })

/**
 * A scientist's staging request for whole observations into `cologne-processing`, as the API
 * would store it: the request's id, and an effect that is true once it completed (for `runUntil`).
 */
export const requestStaging = (scientist: string, observations: ReadonlyArray<Ids.ExecutedObsUnitId>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const account = yield* Repositories.accounts.insert({
      name: scientist as never,
      displayName: "Scientist" as never,
      email: null,
      role: "scientist",
      active: true
    })
    const [processing] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-processing'`
    const req = yield* Repositories.stagingRequests.insert({
      accountId: account.id,
      dataLocationId: processing.id as Ids.DataLocationId,
      status: "pending",
      expiresAt: null,
      errorMessage: null
    } as never)
    for (const eou of observations) {
      yield* Repositories.stagingRequestItems.insert({ stagingRequestId: req.id, rawDataPackageId: null, executedObsUnitId: eou })
    }
    const completed = Effect.map(
      sql<{ status: string }>`select status::text as status from staging_request where id = ${req.id}`,
      ([r]) => r.status === "completed"
    )
    return { id: req.id, completed }
  })
