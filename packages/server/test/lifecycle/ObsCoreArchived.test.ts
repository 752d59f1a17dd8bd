/**
 * ObsCore follows the real lifecycle: an observation filed with files in two modules is absent
 * from `ivoa.obscore` while its data is at the telescope, and appears, one row per module, once
 * the engine has packaged, moved, verified and ARCHIVED every package, with the archived
 * packages' size and a verified copy of each in the archive.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Stages from "../../src/lifecycle/Stages.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

describe("ObsCore over the lifecycle", () => {
  it.scopedLive(
    "an observation appears in ivoa.obscore once every package of it is ARCHIVED, one row per module",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const filed = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 300_000 },
          { path: "det/b.fits", bytes: 900_000 },
          { path: "hk/house.dat", bytes: 5_000, module: 1 }
        ])
        const rows = sql<{ obsId: string; ccatInstrumentModule: string; accessEstsize: number; ccatPackages: number }>`
        select obs_id, ccat_instrument_module, access_estsize, ccat_packages from ivoa.obscore
        where ccat_observation_id = ${filed.eou.id} order by ccat_instrument_module`
        expect(yield* rows).toEqual([])

        const open = sql<
          { n: number }
        >`select count(*)::int as n from raw_data_package where executed_obs_unit_id = ${filed.eou.id} and status <> 'completed'`
        const all = sql<{ n: number }>`select count(*)::int as n from raw_data_package where executed_obs_unit_id = ${filed.eou.id}`
        const unpackaged = sql<
          { n: number }
        >`select count(*)::int as n from raw_data_file where executed_obs_unit_id = ${filed.eou.id} and raw_data_package_id is null`
        yield* runUntil(
          everySite,
          Effect.map(Effect.all([open, all, unpackaged]), ([[o], [a], [u]]) => o.n === 0 && a.n > 0 && u.n === 0),
          120_000
        ).pipe(Effect.provide(policyLayer(topology)))

        const [sizes] = yield* sql<{ m0: number; m1: number; packages0: number }>`
        select coalesce(sum(size_bytes) filter (where instrument_module_id = ${obs.modules[0].id}), 0)::float8 as m0,
               coalesce(sum(size_bytes) filter (where instrument_module_id = ${obs.modules[1].id}), 0)::float8 as m1,
               count(*) filter (where instrument_module_id = ${obs.modules[0].id})::int as packages0
        from raw_data_package where executed_obs_unit_id = ${filed.eou.id}`
        expect(yield* rows).toEqual([
          { obsId: filed.eou.id, ccatInstrumentModule: "280GHz", accessEstsize: Math.ceil(sizes.m0 / 1024), ccatPackages: sizes.packages0 },
          { obsId: filed.eou.id, ccatInstrumentModule: "350GHz", accessEstsize: Math.ceil(sizes.m1 / 1024), ccatPackages: 1 }
        ])
        // Each package a row stands for has a verified copy in the archive.
        const [unarchived] = yield* sql<{ n: number }>`
        select count(*)::int as n from raw_data_package p where p.executed_obs_unit_id = ${filed.eou.id} and not exists (
          select 1 from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = p.id and l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null)`
        expect(unarchived.n).toBe(0)
      }).pipe(Effect.provide(layer)),
    { timeout: 180_000 }
  )
})
