/**
 * Repair from another site, on the real lifecycle: Chile → Cologne → Cornell with an archive copy
 * at each of the last two, every buffer cleaned up. Bytes rot in Cornell's only copy; Cornell has
 * nothing left to repair from, so Cologne takes the package out of its archive into its buffer
 * and sends it along the route again; Cornell's repair then writes its copy anew from the copy
 * that arrived, the package stays ARCHIVED throughout, and the buffers are cleaned up again.
 * Cologne's own copy rotting instead would need a route from Cornell, which there is not: nothing
 * is sent. With no good copy left anywhere but the files still at Chile's SOURCE, Chile writes the
 * package again from them, byte-identical to the recorded one, and sends it; a file changed at
 * SOURCE since is recorded CORRUPT there instead, and nothing is sent.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as RepairForward from "../../src/lifecycle/RepairForward.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import { copyAt, findingEvents, flipByte, verifiedDaysAgo } from "./AuditWorld.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

const gone = { minAgeSinceArchived: "0 seconds" }
const disk = (dir: string, name: string, type: string, retention?: Record<string, unknown>) => ({
  name,
  type,
  technology: "disk",
  driver: { root: `${dir}/locations/${name}` },
  ...(retention ? { retention } : {})
})

const raw = (dir: string) => ({
  sites: [
    { name: "chile", shortName: "cl", locations: [disk(dir, "chile-source", "SOURCE", gone), disk(dir, "chile-buffer", "BUFFER", gone)] },
    {
      name: "cologne",
      shortName: "col",
      locations: [disk(dir, "cologne-buffer", "BUFFER", gone), disk(dir, "cologne-archive", "LONG_TERM_ARCHIVE", { keepForever: true })]
    },
    {
      name: "cornell",
      shortName: "cor",
      locations: [disk(dir, "cornell-buffer", "BUFFER", gone), disk(dir, "cornell-archive", "LONG_TERM_ARCHIVE", { keepForever: true })]
    }
  ],
  routes: [{ from: "chile", to: "cologne", adapter: "local" }, { from: "cologne", to: "cornell", adapter: "local" }],
  policy: {
    maxPackageBytes: "1 MB",
    bundleTargetBytes: "4 MB",
    bundleMaxWait: "1 seconds",
    archiveCopies: 2,
    archiveSites: 2,
    audit: { cycleDays: 30 }
  }
})

describe("repair from another site", () => {
  it.scopedLive(
    "a site whose only copy rotted gets the package again along the route and repairs it; the package stays ARCHIVED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const decoded = Topology.decode(raw(dir))
        if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
        const topology = decoded.right
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const { eou } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 300_000 }])
        const everySite = [["chile", Stages.all], ["cologne", Stages.all], ["cornell", Stages.all]] as const
        const live = (type: string) =>
          Effect.map(
            sql<{ n: number }>`
            select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
            where l.type::text = ${type} and c.status <> 'DELETED'`,
            (r) => r[0]!.n
          )
        const packageRow = Effect.map(
          sql<
            { id: string; status: string; checksum: string }
          >`select id, status::text as status, checksum from raw_data_package where executed_obs_unit_id = ${eou.id}`,
          (rows) => rows[0]
        )
        // Archived at both sites, every SOURCE and BUFFER copy cleaned up: each site holds only its archive copy.
        const settled = Effect.all([packageRow, live("SOURCE"), live("BUFFER")]).pipe(
          Effect.map(([p, source, buffer]) => p?.status === "completed" && source === 0 && buffer === 0)
        )
        yield* runUntil(everySite, settled, 180_000).pipe(Effect.provide(policyLayer(topology)))
        const pkg = (yield* packageRow)!
        const cornell = (yield* copyAt("cornell-archive", pkg.id))!
        const cologne = (yield* copyAt("cologne-archive", pkg.id))!

        // Cologne's copy rotting could not be sent back: no route leaves Cornell.
        yield* sql`update physical_copy set status = 'CORRUPT' where id = ${cologne.id}`
        assert.deepStrictEqual(yield* RepairForward.toBuffer("cornell"), [])
        assert.deepStrictEqual(yield* RepairForward.senders(pkg.id), [])
        yield* sql`update physical_copy set status = 'PRESENT' where id = ${cologne.id}`
        // Cornell's would be sent from Cologne's archive (what an operator's repair request names).
        yield* sql`update physical_copy set status = 'CORRUPT' where id = ${cornell.id}`
        assert.deepStrictEqual(yield* RepairForward.senders(pkg.id), [{ site: "cologne", from: "archive" }])
        yield* sql`update physical_copy set status = 'PRESENT' where id = ${cornell.id}`

        // A byte rots in Cornell's copy; its audit finds it.
        const cornellFile = path.join(dir, "locations", "cornell-archive", cornell.path)
        yield* flipByte(cornellFile)
        yield* verifiedDaysAgo(cornell.id, 31)
        const repaired = Effect.map(findingEvents(cornell.id, "DELETED"), (events) => events.length > 0)
        const cleanAgain = Effect.map(Effect.all([live("BUFFER"), repaired]), ([buffer, done]) => done && buffer === 0)
        yield* runUntil(everySite, cleanAgain, 180_000).pipe(Effect.provide(policyLayer(topology)))

        const [found] = yield* findingEvents(cornell.id, "CORRUPT")
        assert.strictEqual(found?.details.by, "audit")
        const [repair] = yield* sql<{ details: { action: string; source: string } }>`
        select details from event_log where entity_id = ${cornell.id} and to_state = 'DELETED'`
        assert.deepStrictEqual([repair!.details.action, repair!.details.source], ["repaired", "cornell-buffer"])
        const now = (yield* copyAt("cornell-archive", pkg.id))!
        assert.strictEqual(now.status, "PRESENT")
        assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(dir, "locations", "cornell-archive", now.path))), pkg.checksum)
        // It travelled once, from Cologne's archive through its buffer, and the package never left ARCHIVED.
        const sent = yield* sql<{ site: string }>`
        select s.name as site from data_transfer t join data_location fl on fl.id = t.from_location_id join site s on s.id = fl.site_id
        join data_transfer_package_member m on m.data_transfer_package_id = t.data_transfer_package_id
        where m.raw_data_package_id = ${pkg.id} and t.status = 'completed' order by t.created_at`
        assert.deepStrictEqual(sent.map((s) => s.site), ["chile", "cologne", "cologne"])
        const [left] = yield* sql<{ n: number }>`
        select count(*)::int as n from event_log where entity_kind = 'RawDataPackage' and entity_id = ${pkg.id} and from_state = 'completed'`
        assert.strictEqual(left!.n, 0)
        assert.strictEqual((yield* copyAt("cologne-archive", pkg.id))!.status, "PRESENT")
      }).pipe(Effect.provide(layer)),
    { timeout: 300_000 }
  )

  it.scopedLive(
    "with no good copy left anywhere, the package is written again from its files at SOURCE, identical, and repaired; a changed file is recorded, not sent",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        // SOURCE keeps its files 30 days after archiving, the buffers are emptied, one archive copy in Cologne.
        const base = raw(dir)
        const decoded = Topology.decode({
          sites: [
            {
              ...base.sites[0],
              locations: [
                disk(dir, "chile-source", "SOURCE", { minAgeSinceArchived: "30 days" }),
                disk(dir, "chile-buffer", "BUFFER", gone)
              ]
            },
            base.sites[1]
          ],
          routes: [base.routes[0]],
          policy: { ...base.policy, archiveCopies: 1, archiveSites: 1 }
        })
        if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
        const topology = decoded.right
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const kept = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 200_000 }, { path: "b.fits", bytes: 50_000 }])
        const changed = yield* fileObservation(topology, obs, [{ path: "c.fits", bytes: 100_000 }])
        const sites = [["chile", Stages.all], ["cologne", Stages.all]] as const
        const packageOf = (eou: string) =>
          Effect.map(
            sql<{ id: string; status: string; checksum: string }>`
          select id, status::text as status, checksum from raw_data_package where executed_obs_unit_id = ${eou}`,
            (rows) => rows[0]
          )
        const buffers = Effect.map(
          sql<
            { n: number }
          >`select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id where l.type = 'BUFFER' and c.status <> 'DELETED'`,
          (r) => r[0]!.n
        )
        const settled = Effect.map(
          Effect.all([packageOf(kept.eou.id), packageOf(changed.eou.id), buffers]),
          ([a, b, n]) => a?.status === "completed" && b?.status === "completed" && n === 0
        )
        yield* runUntil(sites, settled, 180_000).pipe(Effect.provide(policyLayer(topology)))
        const a = (yield* packageOf(kept.eou.id))!
        const b = (yield* packageOf(changed.eou.id))!

        // Both archive copies rot; one of the second observation's files is rewritten at SOURCE.
        const copyA = (yield* copyAt("cologne-archive", a.id))!
        const copyB = (yield* copyAt("cologne-archive", b.id))!
        yield* flipByte(path.join(dir, "locations", "cologne-archive", copyA.path))
        yield* flipByte(path.join(dir, "locations", "cologne-archive", copyB.path))
        const cFile = changed.files[0]!
        yield* flipByte(path.join(dir, "locations", "chile-source", cFile.relativePath))
        yield* verifiedDaysAgo(copyA.id, 31)
        yield* verifiedDaysAgo(copyB.id, 31)

        const sourceCopyOf = (fileId: string) =>
          Effect.map(
            sql<{ id: string; status: string }>`select id, status::text as status from physical_copy where raw_data_file_id = ${fileId}`,
            (r) => r[0]!
          )
        const done = Effect.map(
          Effect.all([findingEvents(copyA.id, "DELETED"), sourceCopyOf(cFile.id), buffers]),
          ([repairedA, c, n]) => repairedA.length > 0 && c.status === "CORRUPT" && n === 0
        )
        yield* runUntil(sites, done, 180_000).pipe(Effect.provide(policyLayer(topology)))

        const [repair] = yield* sql<{ details: { action: string; source: string } }>`
        select details from event_log where entity_id = ${copyA.id} and to_state = 'DELETED'`
        assert.deepStrictEqual([repair!.details.action, repair!.details.source], ["repaired", "cologne-buffer"])
        const now = (yield* copyAt("cologne-archive", a.id))!
        assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(dir, "locations", "cologne-archive", now.path))), a.checksum)
        const sent = yield* sql<{ n: number }>`
        select count(*)::int as n from data_transfer t join data_transfer_package_member m on m.data_transfer_package_id = t.data_transfer_package_id
        where m.raw_data_package_id = ${a.id} and t.status = 'completed'`
        assert.strictEqual(sent[0]!.n, 2, "sent once when archived, once more for the repair")
        // The changed file is recorded at SOURCE; its package was not written again nor sent, and still shows its bad copy.
        const [cFinding] = yield* findingEvents((yield* sourceCopyOf(cFile.id)).id, "CORRUPT")
        assert.strictEqual(cFinding?.details.by, "repair")
        const sentB = yield* sql<{ n: number }>`
        select count(*)::int as n from data_transfer_package_member where raw_data_package_id = ${b.id}`
        assert.strictEqual(sentB[0]!.n, 1)
        assert.strictEqual((yield* copyAt("cologne-archive", b.id))!.status, "CORRUPT")
        assert.strictEqual((yield* packageOf(changed.eou.id))!.status, "completed")
      }).pipe(Effect.provide(layer)),
    { timeout: 300_000 }
  )
})
