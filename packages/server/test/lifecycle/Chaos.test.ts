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
import { Ids, Repositories } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
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
import { flipByte, flipByteOnTape } from "./AuditWorld.js"
import { assertDisksHoldTheRecords, assertNothingDeletedEarly, assertPackagesWhole, count, stagedCopies } from "./ChaosChecks.js"
import { elapsed, minKills, minStagesHit, monkey, until } from "./ChaosMonkey.js"
import { chaosConfig, cliBundle, decodeConfig, openJobs, prng, SiteWorker } from "./ChaosWorld.js"
import { fileObservation, observatory, syncTopology, tempDir, type WrittenFile } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

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
        const { url } = yield* TestDatabase.migratedDatabase
        const db = PgClient.layer(OpsDb.clientConfig(url)).pipe(Layer.orDie)

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

          const { archiveCopies, packages } = yield* assertPackagesWhole(dir, filed)
          yield* assertNothingDeletedEarly
          const temporary = yield* assertDisksHoldTheRecords(topology, archiveCopies)
          console.log(
            `chaos seed ${seed}: ${packages.length} packages, ${filed.length} files; ${elapsed()}; ` +
              `temporary files left by killed writers: ${temporary.length}${temporary.length > 0 ? ` (${temporary.join(", ")})` : ""}`
          )
        }).pipe(Effect.provide(db))
      }),
    480_000
  )
})
