/**
 * Fixtures of the audit and inventory tests: packages archived by the real archiving stage, the
 * archive copies' rows, ages given to their last verification, bytes changed at rest behind the
 * platform's back (a file on disk, a tape volume), and the events findings leave.
 */
import { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import { arrivedPackage, type ArrivedPackage, runSitesUntil } from "./ArchiveWorld.js"
import { type observatory, policyLayer } from "./LifecycleWorld.js"

/** A package archived at cologne's archive through the archiving stage. */
export const archivedPackages = (
  topology: Topology.Topology,
  obs: Effect.Effect.Success<typeof observatory>,
  sizes: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const pkgs: Array<ArrivedPackage> = []
    for (const [i, bytes] of sizes.entries()) {
      pkgs.push(yield* arrivedPackage(topology, obs, [{ path: `det${i}/a.fits`, bytes }, { path: `det${i}/b.fits`, bytes: 1000 }]))
    }
    const ids = pkgs.map((p) => p.packageId)
    yield* runSitesUntil(
      [["cologne", [Archiving.stage]]],
      Effect.map(
        sql<{ n: number }>`select count(*)::int as n from raw_data_package where id in ${sql.in(ids)} and status = 'completed'`,
        (rows) => rows[0].n === ids.length
      )
    ).pipe(Effect.provide(policyLayer(topology)))
    return pkgs
  })

/** A package's copy at a location, by location name. */
export interface CopyRow {
  readonly id: string
  readonly path: string
  readonly status: string
  readonly verifiedAt: Date | null
  readonly sizeBytes: number
}

/** The copy of a package at a location. */
export const copyAt = (location: string, packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<CopyRow>`
      select c.id, c.path, c.status::text as status, c.verified_at, c.size_bytes from physical_copy c
      join data_location l on l.id = c.data_location_id
      where l.name = ${location} and c.raw_data_package_id = ${packageId} and c.status <> 'DELETED'`).pipe(Effect.map((rows) => rows[0]))

/** Sets a copy's last verification `days` ago, as if that long had passed since. */
export const verifiedDaysAgo = (copyId: string, days: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`update physical_copy set verified_at = now() - make_interval(days => ${days}) where id = ${copyId}`
  )

/** The details of the events that moved a copy to a state. */
export const findingEvents = (copyId: string, to: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ details: { by?: string; detail?: string }; actor: string }>`
      select details, actor from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copyId} and to_state = ${to}`)

/** A copy's status now. */
export const statusOf = (copyId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ status: string }>`select status::text as status from physical_copy where id = ${copyId}`
  ).pipe(
    Effect.map((rows) => rows[0]?.status)
  )

/** Flips one byte of a file in place, at `at` (default: the middle), behind the platform's back. */
export const flipByte = (file: string, at?: number) =>
  Effect.promise(async () => {
    const handle = await fs.open(file, "r+")
    try {
      const { size } = await handle.stat()
      const offset = at ?? Math.floor(size / 2)
      const one = Buffer.alloc(1)
      await handle.read(one, 0, 1, offset)
      one[0] = one[0]! ^ 0xff
      await handle.write(one, 0, 1, offset)
    } finally {
      await handle.close()
    }
  })

/**
 * Flips a byte of a package on a virtual tape: finds 64 bytes from the middle of the package
 * (`original`, its bytes as archived) in the library's volume files, and flips the first of them.
 * Looks for the bytes rather than asking the driver's catalog, so the test trusts nothing of the
 * driver under test.
 */
export const flipByteOnTape = (libraryDir: string, original: Uint8Array) =>
  Effect.promise(async () => {
    const probe = Buffer.from(original.subarray(Math.floor(original.length / 2), Math.floor(original.length / 2) + 64))
    for (const name of (await fs.readdir(libraryDir)).filter((n) => n.endsWith(".vol"))) {
      const file = path.join(libraryDir, name)
      const at = (await fs.readFile(file)).indexOf(probe)
      if (at >= 0) {
        const handle = await fs.open(file, "r+")
        try {
          await handle.write(Buffer.from([probe[0]! ^ 0xff]), 0, 1, at)
        } finally {
          await handle.close()
        }
        return file
      }
    }
    throw new Error(`the package's bytes are on no volume under ${libraryDir}`)
  })

/** Cologne's archive folder in a demo topology rooted at `dir`. */
export const archiveRoot = (dir: string) => path.join(dir, "locations", "cologne-archive")
