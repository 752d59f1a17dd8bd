/**
 * A tape archive configured the way an operator configures it: a YAML file whose
 * LONG_TERM_ARCHIVE is `technology: tape` on a virtual library (volumes as files in a folder,
 * two small volumes, real mount and seek delays), loaded by the server's configuration loader,
 * with the built-in storages building the tape driver from the driver options. The whole
 * lifecycle runs: filed files are packaged, moved, archived on tape and verified there; a
 * staging request then recalls them from tape and stages every file with its filed checksum.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as ServerConfig from "../../src/ServerConfig.js"
import { fileObservation, layer, observatory, policyLayer, requestStaging, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"
import { catalogOf, checksumOnTape, fileNamesIn } from "./TapeWorld.js"

/** The configuration file: the demo's two sites, with the archive on a virtual tape library. */
const configYaml = (dir: string) => {
  const root = (name: string) => path.join(dir, "locations", name)
  return `
sites:
  - name: chile
    shortName: cl
    locations:
      - { name: chile-source, type: SOURCE, technology: disk, driver: { root: ${root("chile-source")} } }
      - { name: chile-buffer, type: BUFFER, technology: disk, driver: { root: ${root("chile-buffer")} } }
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${root("cologne-buffer")} } }
      - name: cologne-archive
        type: LONG_TERM_ARCHIVE
        technology: tape
        driver:
          root: ${root("cologne-archive")}
          library: virtual
          volumes: 2
          volumeBytes: 2 MB
          drives: 1
          mountLatency: 40 millis
          seekLatency: 5 millis
          keepOnline: false
        retention: { keepForever: true, deleteConcurrency: 1 }
      - { name: cologne-processing, type: PROCESSING, technology: disk, driver: { root: ${root("cologne-processing")} } }
routes:
  - { from: chile, to: cologne, adapter: local }
policy:
  maxPackageBytes: 1 MB
  bundleTargetBytes: 4 MB
  bundleMaxWait: 1 seconds
`
}

const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

describe("a tape archive from the configuration file", () => {
  it.scopedLive(
    "files → ARCHIVED on tape, verified on the volume → staging recalls from tape → STAGED with the filed checksums",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = path.join(dir, "ccat.yaml")
        yield* Effect.promise(() => fs.writeFile(file, configYaml(dir)))
        const config = yield* ServerConfig.load({ configFile: file })
        const topology = config.topology
        const archive = topology.sites[1].locations.find((l) => l.name === "cologne-archive")!
        assert.strictEqual(archive.technology, "tape")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const first = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 400_000 },
          { path: "det/b.fits", bytes: 700_000 },
          { path: "hk/house.dat", bytes: 3_000, module: 1 }
        ])
        yield* fileObservation(topology, obs, [{ path: "scan/big.raw", bytes: 1_300_000 }])

        // Every package ARCHIVED with a PRESENT, verified copy on the tape archive.
        const open = Effect.map(
          sql<{ open: number; total: number }>`
          select count(*) filter (where status <> 'completed')::int as open, count(*)::int as total from raw_data_package`,
          ([r]) => r.total > 0 && r.open === 0
        )
        yield* runUntil(everySite, open, 180_000).pipe(Effect.provide(policyLayer(topology)))
        const copies = yield* sql<{ path: string; checksum: string; verifiedAt: Date | null }>`
        select c.path, c.checksum, c.verified_at from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-archive' and c.raw_data_package_id is not null and c.status = 'PRESENT'`
        const packages = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_package`
        assert.strictEqual(copies.length, packages[0].n)
        assert.isAtLeast(copies.length, 4)

        // The bytes are on the volumes: each package's tape file, read by its file mark, has its checksum.
        const tapeRoot = archive.driver.root as string
        const catalog = yield* Effect.promise(() => catalogOf(tapeRoot))
        for (const c of copies) {
          assert.isNotNull(c.verifiedAt, `${c.path} verified`)
          assert.strictEqual(yield* Effect.promise(() => checksumOnTape(tapeRoot, c.path)), c.checksum)
        }
        // 2 MB volumes cannot hold every package: the driver moved on to the second cartridge.
        assert.deepStrictEqual([...new Set(Object.values(catalog).map((e) => e.volume))].sort(), ["CCAT000", "CCAT001"])
        // keepOnline: false, so nothing is in the disk cache: staging has to recall from tape.
        assert.deepStrictEqual(yield* Effect.promise(() => fileNamesIn(path.join(tapeRoot, "cache"))), [])

        // A scientist stages the first observation.
        const req = yield* requestStaging("sci-tape", [first.eou.id])
        yield* runUntil(everySite, req.completed, 120_000).pipe(Effect.provide(policyLayer(topology)))
        const paths = yield* Staging.stagedPaths(req.id)
        assert.strictEqual(paths.length, first.files.length)
        for (const f of first.files) {
          const at = paths.find((p) => p.endsWith(f.relativePath))
          assert.isDefined(at, `${f.relativePath} is staged`)
          assert.strictEqual(yield* Effect.promise(() => sha256File(at!)), f.checksum)
        }
        const stagedCopies = yield* sql<{ status: string; verifiedAt: Date | null }>`
        select c.status::text as status, c.verified_at from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-processing'`
        assert.strictEqual(stagedCopies.length, first.files.length)
        assert.isTrue(stagedCopies.every((c) => c.status === "STAGED" && c.verifiedAt !== null))
        // The recall brought exactly the first observation's packages back into the cache, one per package.
        const firstPackages = yield* sql<{ path: string }>`
        select relative_path as path from raw_data_package where executed_obs_unit_id = ${first.eou.id}`
        const recalled = (yield* Effect.promise(() => fileNamesIn(path.join(tapeRoot, "cache")))).sort()
        assert.deepStrictEqual(recalled, firstPackages.map((p) => catalog[p.path]!.cacheId).sort())
      }).pipe(Effect.provide(layer)),
    360_000
  )
})
