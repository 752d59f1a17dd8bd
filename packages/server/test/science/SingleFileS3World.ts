/**
 * What the single-file S3 tests share: an observation archived to an S3 bucket whose every other
 * copy (the buffers' tars, the files at SOURCE) is deleted, pyvo (`fetch_raw_files.py`) run as an
 * astronomer runs it, and the count of staging requests, which reading single files never adds to.
 */
import { execFile } from "node:child_process"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import { fileURLToPath } from "node:url"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as ObsCorePublisher from "../../src/ObsCorePublisher.js"
import * as Sites from "../../src/lifecycle/Sites.js"
import { Storages } from "../../src/lifecycle/Storages.js"
import { arrivedPackage, editLocations, runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { credentialEnv } from "../lifecycle/EndToEndRemoteWorld.js"
import { observatory, policyLayer, syncTopology } from "../lifecycle/LifecycleWorld.js"
import { BaseUrl } from "./ScienceWorld.js"

/** What `fetch_raw_files.py` (pyvo, as an astronomer runs it) found and downloaded for one case. */
export interface Fetched {
  readonly cone: Array<string>
  readonly time: Array<string>
  readonly instrument: Array<string>
  readonly datalink: Array<string>
  readonly files: Array<
    { access_url: string; content_length: number; link_auth: string; path: string; checksum: string; read_from: string | null }
  >
  readonly errors: Array<string>
}

/** The astronomer's script, beside this module. */
const script = fileURLToPath(new URL("./fetch_raw_files.py", import.meta.url))

/**
 * Runs `fetch_raw_files.py` against a TAP service for several cases in one process (its imports
 * cost most), with Debian's python, where python3-pyvo lives.
 */
export const pyvoFetch = (tapUrl: string, cases: ReadonlyArray<Record<string, unknown>>) =>
  Effect.async<Array<Fetched>, Error>((resume) => {
    const child = execFile(
      "/usr/bin/python3",
      [script, tapUrl, JSON.stringify(cases)],
      { timeout: 60_000 },
      (error, stdout, stderr) =>
        resume(
          error === null ? Effect.sync(() => JSON.parse(stdout) as Array<Fetched>) : Effect.fail(new Error(`${error.message}\n${stderr}`))
        )
    )
    return Effect.sync(() => child.kill())
  }).pipe(Effect.orDie)

/** How many staging requests there are: reading single files must never make one. */
export const staged = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`select count(*)::int as n from staging_request`).pipe(
  Effect.map(([r]) => r!.n)
)

/** Where the archive's objects go: a bucket (created if missing) and a key prefix on a radosgw. */
export interface ArchiveBucket {
  readonly endpoint: string
  readonly region: string
  readonly bucket: string
  readonly prefix: string
}

/**
 * Files an observation of four files (a long, a non-ASCII and a nested name, a file of an exact
 * block and an empty one), archives it to the bucket and deletes every other copy, answering the
 * package, each file's bytes by id and the observatory rows it was filed against.
 */
export const s3OnlyPackage = (dir: string, archive: ArchiveBucket) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const base = yield* BaseUrl
    const topology = topologyFrom(dir, (raw) =>
      editLocations(raw, (l) =>
        l.type === "LONG_TERM_ARCHIVE"
          ? {
            ...l,
            technology: "s3",
            driver: {
              bucket: archive.bucket,
              prefix: archive.prefix,
              endpoint: archive.endpoint,
              region: archive.region,
              createBucket: true,
              ...credentialEnv
            }
          }
          : l))
    yield* syncTopology(topology)
    yield* ObsCorePublisher.write({ baseUrl: base })
    const obs = yield* observatory
    // a long, a non-ASCII (pax headers) and a nested name, a file of an exact block and an empty one
    const pkg = yield* arrivedPackage(topology, obs, [
      { path: "det/a.fits", bytes: 300_000 },
      { path: `det/${"long-".repeat(30)}ü.fits`, bytes: 70_001 },
      { path: "hk/block.dat", bytes: 512 },
      { path: "hk/empty.dat", bytes: 0 }
    ])
    const bytes = new Map<string, Buffer>()
    for (const f of pkg.files) bytes.set(f.id, yield* Effect.promise(() => fs.readFile(f.absolutePath)))
    const archived = Effect.map(
      sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`,
      ([p]) => p!.status === "completed"
    )
    yield* runSitesUntil([["cologne", [Archiving.stage]]], archived, 60_000).pipe(Effect.provide(policyLayer(topology)))

    // every copy but the archive's goes: the buffers' tars and the files at SOURCE
    const others = yield* sql<{ id: string; path: string; locationId: string }>`
    select c.id, c.path, c.data_location_id as location_id from physical_copy c join data_location l on l.id = c.data_location_id
    where (c.raw_data_package_id = ${pkg.packageId} or c.raw_data_file_id in ${sql.in(pkg.files.map((f) => f.id))})
      and l.type <> 'LONG_TERM_ARCHIVE'`
    for (const c of others) yield* (yield* storages.of(yield* Sites.location(c.locationId))).delete(c.path)
    yield* sql`update physical_copy set status = 'DELETED' where id in ${sql.in(others.map((c) => c.id))}`
    return { pkg, bytes, observatory: obs }
  })
