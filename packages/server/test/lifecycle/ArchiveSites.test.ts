/**
 * Copies at more than one site: with `archiveSites: 2` a package archived in Cologne moves on
 * along the routes to Cornell's archive, is ARCHIVED only with a verified copy at each, and its
 * Chile copies are deleted only then. The configuration check refuses targets the routes can
 * never meet, each problem naming its field. A package whose buffer copy at the first archive site
 * goes bad before it is sent on is repaired there from that site's archive and still moves on.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import {
  assertByteIdentical,
  fileObservation,
  layer,
  observatory,
  policyLayer,
  runUntil,
  spoilCopy,
  syncTopology,
  tempDir
} from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

const disk = (dir: string, name: string, type: string, retention?: Record<string, unknown>) => ({
  name,
  type,
  technology: "disk",
  driver: { root: `${dir}/locations/${name}` },
  ...(retention ? { retention } : {})
})

/** Chile → Cologne → Cornell, an archive at each of the last two. */
const raw = (dir: string, policy: Record<string, unknown>, routes: ReadonlyArray<Record<string, unknown>>) => ({
  sites: [
    {
      name: "chile",
      shortName: "cl",
      locations: [
        disk(dir, "chile-source", "SOURCE", { minAgeSinceArchived: "0 seconds" }),
        disk(dir, "chile-buffer", "BUFFER", { minAgeSinceArchived: "0 seconds" })
      ]
    },
    {
      name: "cologne",
      shortName: "col",
      locations: [disk(dir, "cologne-buffer", "BUFFER"), disk(dir, "cologne-archive", "LONG_TERM_ARCHIVE", { keepForever: true })]
    },
    {
      name: "cornell",
      shortName: "cor",
      locations: [disk(dir, "cornell-buffer", "BUFFER"), disk(dir, "cornell-archive", "LONG_TERM_ARCHIVE", { keepForever: true })]
    }
  ],
  routes,
  policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds", ...policy }
})

const onward = [{ from: "chile", to: "cologne", adapter: "local" }, { from: "cologne", to: "cornell", adapter: "local" }]

/** Chile → Cologne → Cornell in a temporary folder, a copy required at both archive sites, in the ops-db. */
const twoArchiveSites = Effect.gen(function* () {
  const dir = yield* tempDir
  const decoded = Topology.decode(raw(dir, { archiveCopies: 2, archiveSites: 2 }, onward))
  if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
  yield* syncTopology(decoded.right)
  return { dir, topology: decoded.right }
})

const problemsOf = (input: unknown): ReadonlyArray<string> => {
  const decoded = Topology.decode(input)
  return decoded._tag === "Left" ? decoded.left.problems : []
}

describe("archive copies at distinct sites", () => {
  it("the configuration check refuses targets the routes can never meet", () => {
    assert.deepStrictEqual(problemsOf(raw("/x", { archiveCopies: 2, archiveSites: 2 }, onward)), [])
    const noOnward = problemsOf(raw("/x", { archiveCopies: 2, archiveSites: 2 }, [onward[0]]))
    assert.strictEqual(noOnward.length, 1)
    assert.match(noOnward[0], /^policy\.archiveCopies: packages filed at site "chile" can reach 1 LONG_TERM_ARCHIVE locations/)
    const sites = problemsOf(raw("/x", { archiveCopies: 2, archiveSites: 3 }, onward))
    assert.isTrue(sites.some((p) => p.startsWith("policy.archiveSites: copies at 3 sites need at least as many copies")), sites.join("\n"))
    const unreachable = problemsOf(raw("/x", {}, []))
    assert.isTrue(
      unreachable.some((p) => p.startsWith(`routes: packages filed at site "chile" can reach no site with a LONG_TERM_ARCHIVE`)),
      unreachable.join("\n")
    )
  })

  it.scopedLive(
    "a package archived at one site moves on to the next, is ARCHIVED with a copy at each, and only then leaves Chile",
    () =>
      Effect.gen(function* () {
        const { dir, topology } = yield* twoArchiveSites
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const { eou, files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 200_000 }, { path: "b.fits", bytes: 3_000 }])
        const everySite = [["chile", Stages.all], ["cologne", Stages.all], ["cornell", Stages.all]] as const
        const packages = sql<{ id: string; status: string }>`
        select id, status::text as status from raw_data_package where executed_obs_unit_id = ${eou.id}`
        const copiesAt = (location: string) => sql<{ path: string; checksum: string; status: string }>`
          select c.path, c.checksum, c.status::text as status from physical_copy c
          join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
          where l.name = ${location} and p.executed_obs_unit_id = ${eou.id}`
        const sourceGone = Effect.map(
          sql<{ n: number }>`
          select count(*)::int as n from physical_copy c join raw_data_file f on f.id = c.raw_data_file_id
          where f.executed_obs_unit_id = ${eou.id} and c.status = 'DELETED'`,
          (r) => r[0].n === files.length
        )
        yield* runUntil(
          everySite,
          Effect.zipWith(
            Effect.map(packages, (ps) => ps.length > 0 && ps.every((p) => p.status === "completed")),
            sourceGone,
            (a, b) => a && b
          ),
          180_000
        ).pipe(Effect.provide(policyLayer(topology)))
        for (const location of ["cologne-archive", "cornell-archive"]) {
          const copies = yield* copiesAt(location)
          assert.strictEqual(copies.length, (yield* packages).length, location)
          for (const c of copies) {
            assert.strictEqual(c.status, "PRESENT")
            assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(dir, "locations", location, c.path))), c.checksum)
          }
        }
        // ARCHIVED was recorded only once the second site held its copy.
        const [completedAt] = yield* sql<{ at: Date }>`
        select max(e.at) as at from event_log e join raw_data_package p on p.id = e.entity_id
        where p.executed_obs_unit_id = ${eou.id} and e.entity_kind = 'RawDataPackage' and e.to_state = 'completed'`
        const [cornellAt] = yield* sql<{ at: Date }>`
        select min(c.created_at) as at from physical_copy c join data_location l on l.id = c.data_location_id
        join raw_data_package p on p.id = c.raw_data_package_id where l.name = 'cornell-archive' and p.executed_obs_unit_id = ${eou.id}`
        assert.isTrue(completedAt.at.getTime() >= cornellAt.at.getTime())
        // The Chile SOURCE copies were deleted only after both archives held theirs.
        const [firstDeleted] = yield* sql<{ at: Date }>`
        select min(e.at) as at from event_log e join physical_copy c on c.id = e.entity_id
        join raw_data_file f on f.id = c.raw_data_file_id
        where f.executed_obs_unit_id = ${eou.id} and e.to_state = 'DELETION_POSSIBLE'`
        assert.isTrue(firstDeleted.at.getTime() >= cornellAt.at.getTime())
      }).pipe(Effect.provide(layer)),
    { timeout: 240_000 }
  )

  for (const finding of ["CORRUPT", "MISSING"] as const) {
    it.scopedLive(
      `archived at Cologne, its buffer copy found ${finding} before it was sent on: repaired from Cologne's archive and sent to Cornell, nothing sent from Chile again`,
      () =>
        Effect.gen(function* () {
          const { dir, topology } = yield* twoArchiveSites
          const sql = yield* SqlClient.SqlClient
          const obs = yield* observatory
          const { files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 40_000 }])
          const archivedAt = (location: string) =>
            Effect.map(
              sql<{ n: number }>`
                select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
                join raw_data_package p on p.id = c.raw_data_package_id
                where l.name = ${location} and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum`,
              (r) => r[0]!.n === 1
            )
          // Cologne archives the package and sends nothing on yet.
          yield* runUntil([["chile", Stages.all], ["cologne", [Arrival.stage, Archiving.stage]]], archivedAt("cologne-archive"), 120_000)
            .pipe(Effect.provide(policyLayer(topology)))
          const [buffered] = yield* sql<{ id: string; path: string }>`
            select c.id, c.path from physical_copy c join data_location l on l.id = c.data_location_id
            where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT'`
          yield* spoilCopy(dir, "cologne-buffer", buffered!, finding)

          const everySite = [["chile", Stages.all], ["cologne", Stages.all], ["cornell", Stages.all]] as const
          const completed = Effect.map(
            sql<{ status: string }>`select status::text as status from raw_data_package`,
            (r) => r[0]!.status === "completed"
          )
          yield* runUntil(everySite, completed, 180_000).pipe(Effect.provide(policyLayer(topology)))
          const [bad] = yield* sql<{ status: string; action: string | null }>`
            select c.status::text as status,
              (select e.details->>'action' from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETED') as action
            from physical_copy c where c.id = ${buffered!.id}`
          assert.deepStrictEqual([bad!.status, bad!.action], ["DELETED", "repaired"])
          const sent = yield* sql<{ from: string; to: string }>`
            select fs.name as from, ts.name as to from data_transfer t
            join data_location fl on fl.id = t.from_location_id join site fs on fs.id = fl.site_id
            join data_location tl on tl.id = t.to_location_id join site ts on ts.id = tl.site_id
            where t.status = 'completed' order by t.created_at`
          assert.deepStrictEqual(sent.map((t) => `${t.from}->${t.to}`), ["chile->cologne", "cologne->cornell"], "each hop once")
          yield* assertByteIdentical(dir, files, "cologne-archive")
          yield* assertByteIdentical(dir, files, "cornell-archive")
        }).pipe(Effect.provide(layer)),
      { timeout: 360_000 }
    )
  }
})
