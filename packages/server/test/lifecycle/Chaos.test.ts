/**
 * Workers SIGKILLed at random instants of every stage, restarted each time, many times over,
 * converge: every file archived in the required number of verified copies, staged byte-identical,
 * cleaned up, with no duplicate package, no lost file and no copy deleted before its package was
 * archived. Cologne runs two worker processes sharing a disk and a tape archive; audits re-read
 * copies at rest all along, and bytes flipped at rest in an archived package (on disk and on tape)
 * are found by an audit and repaired from the other archive, under fire too. The kill schedule
 * comes from a seeded PRNG; the seed is printed and `CCAT_CHAOS_SEED=<seed>` replays it (the
 * instants still depend on the machine's speed).
 */
import { Ids, Migrations, Repositories } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { Disk } from "@ccat/storage-drivers"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { activeJobs, chaosConfig, cliBundle, decodeConfig, filesUnder, openJobs, prng, SiteWorker } from "./ChaosWorld.js"
import { fileObservation, observatory, syncTopology, tempDir, type WrittenFile } from "./LifecycleWorld.js"
import { gnuTar, sha256File } from "./support.js"
import { flipByte, flipByteOnTape } from "./AuditWorld.js"
import { catalogOf, checksumOnTape } from "./TapeWorld.js"

const started = Date.now()
const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(1)} s]`

/** How many times the monkey kills a worker at most, and at least (it goes on while cleanup runs if need be). */
const kills = 40
const minKills = 16
/** How many distinct stages the monkey must have cut mid-job before it may stop (short of `kills`). */
const minStagesHit = 4

/** The stages the monkey aims at, and the site whose worker runs each here. */
const targets = [
  ["chile", "package"],
  ["chile", "bundle"],
  ["chile", "transfer"],
  ["chile", "cleanup"],
  ["cologne", "arrive"],
  ["cologne", "archive"],
  ["cologne", "staging"],
  ["cologne", "cleanup"],
  ["cologne", "audit"],
  ["cologne", "repair"]
] as const

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0]!.n))

/** Copies outside the archives that are not DELETED yet, per location and status: what a stuck cleanup shows. */
const liveCopies = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ location: string; status: string; n: number; oldest: string }>`
    select l.name as location, c.status::text as status, count(*)::int as n, min(c.updated_at)::text as oldest
    from physical_copy c join data_location l on l.id = c.data_location_id
    where l.type <> 'LONG_TERM_ARCHIVE' and c.status <> 'DELETED' group by l.name, c.status order by 1, 2`)

/** Polls `done` until it holds, failing with the workers' output after `ms` or when one crashed on its own. */
const until = <E, R>(what: string, done: Effect.Effect<boolean, E, R>, workers: ReadonlyArray<SiteWorker>, ms: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    console.log(`${elapsed()} waiting for ${what}`)
    while (!(yield* done)) {
      for (const w of workers) {
        const crash = w.crashed
        if (crash !== undefined) return yield* Effect.dieMessage(`worker ${w.site} exited on its own while waiting for ${what}:\n${crash}`)
      }
      if (Date.now() > deadline) {
        const open = yield* openJobs
        const copies = yield* liveCopies
        return yield* Effect.dieMessage(
          `${elapsed()} ${what}: not reached within ${ms} ms; open jobs ${JSON.stringify(open)}; ` +
            `live copies outside the archives ${JSON.stringify(copies)}\n${workers.map((w) => w.tail()).join("\n")}`
        )
      }
      yield* Effect.sleep("250 millis")
    }
  })

/** A kill the monkey made: whom, what it aimed at, and which jobs were running at that instant. */
interface Kill {
  readonly site: string
  readonly aim: string
  readonly hit: boolean
  readonly active: ReadonlyArray<string>
}

/**
 * The monkey: for each kill, aims at a stage of a shuffled rotation (one with work now, preferring
 * one it has not cut mid-job yet), waits (up to 4 s) until one of its jobs runs, lets it run a
 * random 0–60 ms more and SIGKILLs one of the site's worker processes (picked at random: either may
 * be running the job); when the stage has no work then, it kills at a random instant anyway. The
 * worker is restarted at once, in the background, while the monkey aims elsewhere. It stops after
 * `kills` kills, or once `calm()` says so and it made `minKills`, `minStagesHit` of them mid-job in
 * distinct stages: how many jobs a stage has at a given instant depends on the machine's speed, so
 * the spread is reached by going on, not by luck.
 */
const monkey = (rng: ReturnType<typeof prng>, workers: Record<string, ReadonlyArray<SiteWorker>>, calm: () => boolean) =>
  Effect.gen(function* () {
    const ready = new Map<SiteWorker, Promise<void>>(Object.values(workers).flat().map((w) => [w, Promise.resolve()]))
    const done: Array<Kill> = []
    const stagesHit = new Set<string>()
    let rotation: Array<(typeof targets)[number]> = []
    while (done.length < kills && !(calm() && done.length >= minKills && stagesHit.size >= minStagesHit)) {
      if (rotation.length === 0) rotation = rng.shuffle(targets)
      // Of the stages not aimed at in this round yet, one with work queued or running now, one not cut yet first.
      const busy = new Set((yield* openJobs).map((j) => j.queue))
      const busyAt = (fresh: boolean) =>
        rotation.findIndex(([site, stage]) => busy.has(`${site}.${stage}`) && (!fresh || !stagesHit.has(`${site}.${stage}`)))
      const fresh = busyAt(true)
      const pick = fresh >= 0 ? fresh : Math.max(0, busyAt(false))
      const [site, stage] = rotation.splice(pick, 1)[0]!
      const victim = workers[site]![rng.int(0, workers[site]!.length - 1)]!
      yield* Effect.promise(() => ready.get(victim)!)
      const queue = `${site}.${stage}`
      const deadline = Date.now() + 4_000
      let seen = false
      while (!seen && Date.now() < deadline) {
        seen = (yield* activeJobs).some((j) => j.queue === queue)
        if (!seen) yield* Effect.sleep("10 millis")
      }
      yield* Effect.sleep(seen ? rng.int(0, 60) : rng.int(0, 800))
      const active = (yield* activeJobs).filter((j) => j.queue.startsWith(`${site}.`)).map((j) => `${j.queue}×${j.n}`)
      yield* Effect.promise(() => victim.kill())
      const hit = active.some((a) => a.startsWith(`${queue}×`))
      if (hit) stagesHit.add(queue)
      done.push({ site, aim: queue, hit, active })
      console.log(`${elapsed()} kill ${done.length}: ${queue}${hit ? "" : " (not running)"}; running ${active.join(", ") || "nothing"}`)
      const restarted = victim.start()
      ready.set(victim, restarted)
      // A failed start surfaces when the monkey next waits for this worker, not as an unhandled rejection.
      restarted.catch(() => undefined)
    }
    yield* Effect.promise(() => Promise.all(ready.values()))
    return done
  })

/** The files of `eou` staged at PROCESSING, by relative path, with their absolute paths. */
const stagedCopies = (root: string, requestId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ path: string; rawDataFileId: string }>`
      select c.path, c.raw_data_file_id from physical_copy c
      join staging_request r on r.data_location_id = c.data_location_id
      where r.id = ${requestId} and c.status = 'STAGED' and c.raw_data_file_id is not null`).pipe(
    Effect.map((rows) => rows.map((r) => ({ file: path.join(root, r.path), id: r.rawDataFileId })))
  )

describe("chaos: workers SIGKILLed at random instants of every stage", () => {
  it.scopedLive(
    "converge: every file archived twice and verified, staged byte-identical, cleaned; nothing duplicated, lost or deleted early",
    () =>
      Effect.gen(function* () {
        const seed = Number(process.env.CCAT_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31))
        console.log(`chaos seed ${seed} (replay with CCAT_CHAOS_SEED=${seed})`)
        const rng = prng(seed)
        const dir = yield* tempDir
        const cli = yield* cliBundle
        const { url } = yield* TestDatabase.freshDatabase
        const db = Layer.tap(PgClient.layer(OpsDb.clientConfig(url)), (ctx) => Migrations.run.pipe(Effect.provide(ctx))).pipe(Layer.orDie)

        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const config = chaosConfig(dir)
          const configFile = path.join(dir, "ccat.json")
          yield* Effect.promise(() => fs.writeFile(configFile, JSON.stringify(config, null, 2)))
          const topology = decodeConfig(config)
          yield* syncTopology(topology)

          // Two instruments with two modules each file six observations in waves while the
          // monkey works: dozens of files, and two multi-MB ones so that writes last long enough
          // to be cut. The first wave is filed before the workers start.
          const instruments = [yield* observatory, yield* observatory] as const
          const filed: Array<WrittenFile> = []
          const observations: Array<Ids.ExecutedObsUnitId> = []
          const wave = (i: number) =>
            Effect.gen(function* () {
              const specs = Array.from({ length: rng.int(5, 8) }, (_, k) => ({
                path: `m${k % 2}/scan-${k}.fits`,
                bytes: rng.int(5_000, 600_000),
                module: (k % 2) as 0 | 1
              }))
              if (i % 3 === 0) {
                specs.push({ path: `m${(i / 3) % 2}/map.raw`, bytes: rng.int(8_000_000, 12_000_000), module: ((i / 3) % 2) as 0 | 1 })
              }
              const { eou, files } = yield* fileObservation(topology, instruments[i % 2]!, specs)
              observations.push(eou.id)
              filed.push(...files)
            })
          const waves = 6
          yield* wave(0)

          // Two processes at Cologne share its disk and tape archives, as a site with more than one worker host would.
          const worker = (site: string) => new SiteWorker(site, cli.file, configFile, Redacted.value(url))
          const workers = { chile: [worker("chile")], cologne: [worker("cologne"), worker("cologne")] }
          const all = Object.values(workers).flat()
          yield* Effect.acquireRelease(
            Effect.promise(() => Promise.all(all.map((w) => w.start()))),
            () => Effect.promise(() => Promise.all(all.map((w) => w.stop())))
          )
          let calm = false
          const chaos = yield* Effect.fork(monkey(rng, workers, () => calm))
          const filing = yield* Effect.fork(
            Effect.forEach(Array.from({ length: waves - 1 }, (_, i) => i + 1), (i) => Effect.zipRight(Effect.sleep("7 seconds"), wave(i)), {
              discard: true
            })
          )

          // Phase 1: everything archived, under fire.
          const archived = Effect.gen(function* () {
            if (observations.length < waves) return false
            const packaged = yield* count(`select count(*)::int as n from raw_data_file where state = 'packaged'`)
            const open = yield* count(`select count(*)::int as n from raw_data_package where status <> 'completed'`)
            return packaged === filed.length && open === 0
          })
          yield* until("every file packaged and every package ARCHIVED", archived, all, 170_000)

          // Phase 1b: bytes rot at rest in two archived packages, one on disk, one on tape. An audit
          // finds each (the copies are made due at once), repair writes it again from the other
          // archive, and the monkey goes on killing, audits and repairs included.
          const [diskVictim, tapeVictim] = yield* sql<{ id: string; diskPath: string; root: string; tapeCopy: string; diskCopy: string }>`
          select p.id, d.path as disk_path, l.driver_config->>'root' as root, t.id as tape_copy, d.id as disk_copy
          from raw_data_package p
          join physical_copy d on d.raw_data_package_id = p.id and d.status = 'PRESENT'
          join data_location l on l.id = d.data_location_id and l.name = 'cologne-archive'
          join physical_copy t on t.raw_data_package_id = p.id and t.status = 'PRESENT'
            and t.data_location_id = (select id from data_location where name = 'cologne-archive-2')
          order by p.size_bytes desc limit 2`
          const tapeOriginal = yield* Effect.promise(() => fs.readFile(path.join(tapeVictim!.root, tapeVictim!.diskPath)))
          yield* flipByte(path.join(diskVictim!.root, diskVictim!.diskPath))
          const tapeRoot = topology.sites[1]!.locations.find((l) => l.name === "cologne-archive-2")!.driver.root as string
          yield* flipByteOnTape(path.join(tapeRoot, "library"), tapeOriginal)
          const rotten = [diskVictim!.diskCopy, tapeVictim!.tapeCopy]
          yield* sql`update physical_copy set verified_at = now() - interval '1 day' where id in ${sql.in(rotten)}`
          const repairedAll = Effect.map(
            sql<{ n: number }>`
            select count(*)::int as n from event_log where entity_kind = 'PhysicalCopy' and entity_id in ${sql.in(rotten)}
              and to_state = 'DELETED' and details->>'action' = 'repaired'`,
            (r) => r[0]!.n === rotten.length
          )
          yield* until("the rotten archive copies found by an audit and repaired", repairedAll, all, 120_000)
          const found = yield* sql<{ by: string }>`
          select details->>'by' as by from event_log where entity_kind = 'PhysicalCopy' and entity_id in ${
            sql.in(rotten)
          } and to_state = 'CORRUPT'`
          assert.isTrue(found.length >= rotten.length && found.every((f) => f.by === "audit" || f.by === "staging"), JSON.stringify(found))

          // Phase 2: a scientist stages three observations (both instruments, two big files) while
          // the monkey goes on; every staged file has the instrument's checksum.
          const account = yield* Repositories.accounts.insert({
            name: "sci-chaos" as never,
            displayName: "Scientist" as never,
            email: null,
            role: "scientist",
            active: true
          })
          const processing = topology.sites[1]!.locations.find((l) => l.type === "PROCESSING")!
          const [processingRow] = yield* sql<{ id: string }>`select id from data_location where name = ${processing.name}`
          const request = yield* Repositories.stagingRequests.insert({
            accountId: account.id,
            dataLocationId: processingRow!.id as Ids.DataLocationId,
            status: "pending",
            expiresAt: null,
            errorMessage: null
          } as never)
          yield* Fiber.join(filing)
          const wanted = [observations[0]!, observations[3]!, observations[waves - 1]!]
          for (const eou of wanted) {
            yield* Repositories.stagingRequestItems.insert({ stagingRequestId: request.id, rawDataPackageId: null, executedObsUnitId: eou })
          }
          const requestStatus = Effect.map(
            sql<{ status: string }>`select status::text as status from staging_request where id = ${request.id}`,
            (r) => r[0]!.status
          )
          yield* until("the staging request completed", Effect.map(requestStatus, (s) => s === "completed" || s === "failed"), all, 60_000)
          assert.strictEqual(yield* requestStatus, "completed")
          const staged = yield* stagedCopies(processing.driver.root as string, request.id)
          const expected = filed.filter((f) => wanted.some((eou) => f.relativePath.startsWith(`${eou}/`)))
          assert.strictEqual(staged.length, expected.length, "every file of the staged observations is STAGED once")
          for (const f of expected) {
            const copy = staged.find((s) => s.id === f.id)
            assert.isDefined(copy, `${f.relativePath} is staged`)
            assert.strictEqual(yield* Effect.promise(() => sha256File(copy!.file)), f.checksum, `${f.relativePath} staged byte-identical`)
          }

          // Phase 3: the monkey stops; cleanup empties SOURCE, the buffers and (after the staging
          // lifetime) PROCESSING, and no job is left waiting, running or retrying.
          calm = true
          const done = yield* Fiber.join(chaos)
          const leftovers = count(`
          select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
          where l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and c.status <> 'DELETED'`)
          yield* until("every SOURCE, BUFFER and PROCESSING copy DELETED", Effect.map(leftovers, (n) => n === 0), all, 45_000)
          yield* until("no job open in pg-boss", Effect.map(openJobs, (o) => o.length === 0), all, 20_000)
          const hits = done.filter((k) => k.hit).length
          console.log(
            `chaos seed ${seed}: ${done.length} kills, ${hits} while the aimed stage ran:\n` +
              done.map((k, i) =>
                `  ${i + 1}. ${k.aim}${k.hit ? "" : " (idle: random instant)"}; running: ${k.active.join(", ") || "nothing"}`
              ).join("\n")
          )
          // Many kills, most of them while the stage aimed at ran, spread over the stages.
          assert.isAtLeast(done.length, minKills)
          const stagesHit = new Set(done.filter((k) => k.hit).map((k) => k.aim))
          assert.isAtLeast(stagesHit.size, minStagesHit, `kills cut jobs of at least ${minStagesHit} stages (${[...stagesHit].join(", ")})`)

          // Packages: all completed, none empty, every filed file in exactly one, at its filed checksum.
          assert.strictEqual(yield* count(`select count(*)::int as n from raw_data_package where status <> 'completed'`), 0)
          assert.strictEqual(
            yield* count(
              `select count(*)::int as n from raw_data_package p where not exists (select 1 from raw_data_file f where f.raw_data_package_id = p.id)`
            ),
            0,
            "no package without files (a duplicate or orphan of a killed packager)"
          )
          const packages = yield* sql<{ id: string; checksum: string; sizeBytes: number }>`
          select id, checksum, size_bytes from raw_data_package`
          const archiveCopies = yield* sql<
            { packageId: string; location: string; technology: string; path: string; checksum: string; root: string }
          >`
          select c.raw_data_package_id as package_id, l.name as location, l.technology::text as technology, c.path, c.checksum,
                 l.driver_config->>'root' as root
          from physical_copy c join data_location l on l.id = c.data_location_id
          where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null`
          const unpacked = path.join(dir, "unpacked")
          const seen = new Map<string, number>()
          for (const p of packages) {
            const copies = archiveCopies.filter((c) => c.packageId === p.id)
            assert.deepStrictEqual(
              copies.map((c) => c.location).sort(),
              ["cologne-archive", "cologne-archive-2"],
              `package ${p.id}: two archive copies`
            )
            for (const c of copies) {
              assert.strictEqual(c.checksum, p.checksum)
              // on tape: the bytes of the tape file the catalog names, read from the volume itself
              const stored = c.technology === "tape" ? checksumOnTape(c.root, c.path) : sha256File(path.join(c.root, c.path))
              assert.strictEqual(yield* Effect.promise(() => stored), p.checksum, `${c.location}/${c.path} verifies`)
            }
            const onDisk = copies.find((c) => c.technology === "disk")!
            const tar = path.join(onDisk.root, onDisk.path)
            for (
              const member of (yield* Effect.promise(() => gnuTar(["-tf", tar]))).split("\n").filter((m) => m !== "" && !m.endsWith("/"))
            ) {
              seen.set(member, (seen.get(member) ?? 0) + 1)
            }
            yield* Effect.promise(() => fs.mkdir(unpacked, { recursive: true }).then(() => gnuTar(["-xf", tar, "-C", unpacked])))
          }
          for (const f of filed) {
            assert.strictEqual(seen.get(f.relativePath), 1, `${f.relativePath} is in exactly one package`)
            assert.strictEqual(
              yield* Effect.promise(() => sha256File(path.join(unpacked, f.relativePath))),
              f.checksum,
              `${f.relativePath} archived intact`
            )
          }

          // Invariant 1 over the whole history: no copy outside the archives began its deletion
          // before every package it holds had been ARCHIVED, except a delivered bundle once every
          // package in it had its own verified copy beside it (arrival unpacks, then drops the
          // tar); no archive copy was ever deleted.
          const early = yield* sql<{ location: string; kind: string; fromState: string; actor: string }>`
          select l.name as location, case when c.data_transfer_package_id is not null then 'bundle'
                 when c.raw_data_package_id is not null then 'package' else 'file' end as kind,
                 d.from_state, d.actor
          from event_log d
          join physical_copy c on c.id = d.entity_id and d.entity_kind = 'PhysicalCopy' and d.to_state = 'DELETION_IN_PROGRESS'
          join data_location l on l.id = c.data_location_id
          join lateral (
            select c.raw_data_package_id as pkg where c.raw_data_package_id is not null
            union all select f.raw_data_package_id from raw_data_file f where f.id = c.raw_data_file_id
            union all select m.raw_data_package_id from data_transfer_package_member m where m.data_transfer_package_id = c.data_transfer_package_id
          ) held on true
          where not exists (select 1 from event_log a where a.entity_kind = 'RawDataPackage' and a.entity_id = held.pkg
                            and a.to_state = 'completed' and a.id < d.id)
            and not (c.data_transfer_package_id is not null and exists (
              select 1 from physical_copy beside where beside.data_location_id = c.data_location_id
                and beside.raw_data_package_id = held.pkg and beside.verified_at is not null and beside.created_at <= d.at))`
          assert.deepStrictEqual(early, [], "no copy was deleted before its packages were archived")
          // An archive copy leaves PRESENT only when it was found bad and repair replaced it.
          assert.strictEqual(
            yield* count(`
            select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
            where l.type = 'LONG_TERM_ARCHIVE' and c.status <> 'PRESENT' and not (c.status = 'DELETED' and exists (
              select 1 from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id
                and e.to_state = 'DELETED' and e.details->>'action' = 'repaired'))`),
            0
          )

          // Disks: nothing under a final name but the archive copies the ops-db records; what
          // killed writers left under temporary names is reported, and a sweep with no age (every
          // writer is idle now) recognises and removes every one of those files.
          const temporary: Array<string> = []
          for (const site of topology.sites) {
            for (const loc of site.locations) {
              const root = loc.driver.root as string
              if (loc.technology === "tape") {
                // The catalog holds exactly the recorded copies (verified on the volumes above). A write
                // killed before its catalog entry leaves dead space on a volume and possibly its cache
                // file; the tape driver has no sweep for those yet (docs/storage-drivers.md).
                const keys = Object.keys(yield* Effect.promise(() => catalogOf(root))).sort()
                const recorded = archiveCopies.filter((c) => c.location === loc.name).map((c) => c.path).sort()
                assert.deepStrictEqual(keys, recorded, `${loc.name}: the tape catalog holds exactly what the ops-db records`)
                continue
              }
              const on = yield* Effect.promise(() => filesUnder(root))
              temporary.push(...on.temporary.map((t) => `${loc.name}/${t}`))
              const recorded = archiveCopies.filter((c) => c.location === loc.name).map((c) => c.path).sort()
              assert.deepStrictEqual(
                on.files,
                loc.type === "LONG_TERM_ARCHIVE" ? recorded : [],
                `${loc.name} holds exactly what the ops-db records`
              )
              const disk = yield* Disk.makeMinimal({ root })
              const swept = yield* disk.sweepTemporary!({ before: new Date(Date.now() + 60_000) })
              assert.deepStrictEqual(
                { files: swept.files, failed: swept.failed },
                { files: on.temporary.length, failed: 0 },
                `${loc.name}: the sweep took every leftover`
              )
              const after = yield* Effect.promise(() => filesUnder(root))
              assert.deepStrictEqual(
                after,
                { files: on.files, temporary: [] },
                `${loc.name}: no leftover after the sweep, every object kept`
              )
            }
          }
          console.log(
            `chaos seed ${seed}: ${packages.length} packages, ${filed.length} files; ${elapsed()}; ` +
              `temporary files left by killed writers: ${temporary.length}${temporary.length > 0 ? ` (${temporary.join(", ")})` : ""}`
          )
        }).pipe(Effect.provide(db))
      }),
    480_000
  )
})
