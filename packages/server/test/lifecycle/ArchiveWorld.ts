/**
 * Fixtures of the archive, staging and cleanup tests on top of LifecycleWorld: topology
 * variants, packages placed where arrival leaves them (without running bundling and transfer),
 * a runner of sites' stages, and quick retries for failure tests.
 */
import { Checksum, Ids, Repositories, Topology, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as Engine from "../../src/lifecycle/Engine.js"
import * as Packager from "../../src/lifecycle/Packager.js"
import * as Sites from "../../src/lifecycle/Sites.js"
import type { Stage } from "../../src/lifecycle/Stage.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import { fileObservation, type observatory, type WrittenFile } from "./LifecycleWorld.js"

/** The demo topology as configuration input, for tests that change it before decoding. */
export interface RawTopology {
  readonly sites: ReadonlyArray<
    { readonly name: string; readonly shortName: string; readonly role: string; readonly locations: ReadonlyArray<Record<string, unknown>> }
  >
  readonly routes: ReadonlyArray<Record<string, unknown>>
  readonly policy: Record<string, unknown>
}

/** The demo topology in a temporary folder, edited as configuration input (locations, retention, policy). */
export const topologyFrom = (dir: string, edit: (raw: RawTopology) => RawTopology = (r) => r): Topology.Topology => {
  const demo = Topology.demo(dir)
  const raw: RawTopology = {
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
    routes: demo.routes.map((r) => ({ from: r.from, to: r.to, adapter: r.adapter })),
    policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds" }
  }
  const decoded = Topology.decode(edit(raw))
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

/** The demo topology with every SOURCE and buffer kept for `minAge` after archiving, with no usage threshold. */
export const topologyKeeping = (dir: string, minAge: string): Topology.Topology =>
  topologyFrom(
    dir,
    (raw) =>
      editLocations(
        raw,
        (l) => (l.type === "LONG_TERM_ARCHIVE" ? l : { ...l, retention: { minAgeSinceArchived: minAge, usageThresholdPercent: 0 } })
      )
  )

/** Edits the locations of a raw topology by name. */
export const editLocations = (raw: RawTopology, edit: (loc: Record<string, unknown>) => Record<string, unknown>): RawTopology => ({
  ...raw,
  sites: raw.sites.map((s) => ({ ...s, locations: s.locations.map(edit) }))
})

/** Adds a location to a site of a raw topology. */
export const addLocation = (raw: RawTopology, site: string, loc: Record<string, unknown>): RawTopology => ({
  ...raw,
  sites: raw.sites.map((s) => (s.name === site ? { ...s, locations: [...s.locations, loc] } : s))
})

/** A location of the ops-db by name, as the stages see it. */
export const locationNamed = (name: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ id: string }>`select id from data_location where name = ${name}`
    return yield* Sites.location(row.id)
  })

/** A RawDataPackage as it stands once it reached the archive site's buffer. */
export interface ArrivedPackage {
  readonly packageId: Ids.RawDataPackageId
  readonly eou: { readonly id: Ids.ExecutedObsUnitId }
  readonly files: ReadonlyArray<WrittenFile>
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

/**
 * Files an observation and puts its package where packaging, transfer and arrival would leave
 * it, without running them: packed from SOURCE into `buffers[0]`, copied into the other buffers,
 * each a PRESENT verified copy; the files packaged with their SOURCE copies recorded; the package
 * in_progress (on its way to the archive).
 */
export const arrivedPackage = (
  topology: Topology.Topology,
  obs: Effect.Effect.Success<typeof observatory>,
  specs: ReadonlyArray<{ readonly path: string; readonly bytes: number }>,
  buffers: ReadonlyArray<string> = ["chile-buffer", "cologne-buffer"]
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages.Storages
    const { eou, files } = yield* fileObservation(topology, obs, specs)
    const source = yield* locationNamed(topology.sites[0].locations.find((l) => l.type === "SOURCE")!.name)
    const pkg = yield* Repositories.rawDataPackages.insert({
      executedObsUnitId: eou.id,
      instrumentModuleId: obs.modules[0].id,
      relativePath: `${eou.id}/${obs.modules[0].id}/package-${randomUUID().slice(0, 8)}.tar`,
      sizeBytes: null,
      checksum: null,
      status: "pending"
    } as never)
    const first = yield* locationNamed(buffers[0])
    const written = yield* Packager.pack({
      packageId: pkg.id,
      executedObsUnitId: eou.id,
      instrumentModuleId: obs.modules[0].id,
      files: files.map((f) => ({ id: f.id, relativePath: f.relativePath as never, sizeBytes: f.sizeBytes, checksum: f.checksum })),
      source: yield* storages.of(source),
      destination: yield* storages.of(first),
      key: pkg.relativePath
    })
    for (const name of buffers.slice(1)) {
      const buffer = yield* locationNamed(name)
      yield* (yield* storages.of(buffer)).put(written.key, (yield* storages.of(first)).get(written.key), { checksum: written.checksum })
    }
    yield* sql.withTransaction(Effect.gen(function* () {
      yield* Transitions.transition({ entity: "RawDataPackage", id: pkg.id, from: "pending", to: "scheduled" })
      yield* Transitions.transition({
        entity: "RawDataPackage",
        id: pkg.id,
        from: "scheduled",
        to: "in_progress",
        set: { sizeBytes: written.sizeBytes, checksum: written.checksum }
      })
      for (const name of buffers) {
        const buffer = yield* locationNamed(name)
        yield* sql`
          insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${pkg.id}, ${buffer.id}, ${written.key}, ${written.sizeBytes}, ${written.checksum}, 'PRESENT', now())`
      }
      for (const f of files) {
        yield* Transitions.transition({ entity: "RawDataFile", id: f.id, from: "filed", to: "packaged", set: { rawDataPackageId: pkg.id } })
        yield* sql`
          insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${f.id}, ${source.id}, ${f.relativePath}, ${f.sizeBytes}, ${f.checksum}, 'PRESENT', now())`
      }
    }))
    return {
      packageId: pkg.id,
      eou,
      files,
      relativePath: written.key,
      sizeBytes: written.sizeBytes,
      checksum: written.checksum
    } satisfies ArrivedPackage
  })

/** Runs sites' stages until `done` holds, polling the ops-db (no fixed sleeps); dies after `timeoutMs`. */
export const runSitesUntil = <E, R, RS>(
  sites: ReadonlyArray<readonly [string, ReadonlyArray<Stage<RS>>]>,
  done: Effect.Effect<boolean, E, R>,
  timeoutMs = 30_000
) =>
  Effect.scoped(
    Effect.gen(function* () {
      for (const [site, stages] of sites) {
        yield* Engine.runSite(site, stages, { plannerInterval: "200 millis", pollingIntervalSeconds: 0.5 })
      }
      const deadline = Date.now() + timeoutMs
      while (!(yield* done)) {
        if (Date.now() > deadline) return yield* Effect.dieMessage("the lifecycle did not get there in time")
        yield* Effect.sleep("100 millis")
      }
    })
  )

/** Runs sites' stages for a while (to show that something does not happen). */
export const runSitesFor = <RS>(sites: ReadonlyArray<readonly [string, ReadonlyArray<Stage<RS>>]>, millis: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      for (const [site, stages] of sites) {
        yield* Engine.runSite(site, stages, { plannerInterval: "200 millis", pollingIntervalSeconds: 0.5 })
      }
      yield* Effect.sleep(millis)
    })
  )

/** A stage with quick retries, so tests of failures do not wait for production backoff. */
export const quickRetries = <R>(stage: Stage<R>): Stage<R> => ({
  ...stage,
  queue: { ...stage.queue, retryDelaySeconds: 1, retryBackoff: false, retryLimit: 100 }
})
