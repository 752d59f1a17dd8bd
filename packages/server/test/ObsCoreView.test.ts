/**
 * ObsCore over the ops-db: `ivoa.obscore` has exactly the columns `ObsCore.columns` describes
 * (names, order, SQL types), shows one row per observation and module whose raw data is
 * archived, with the values ObsCore wants (MJD times, metres, kbytes, a DataLink URL under the
 * publisher's base URL), and hides what is not archived yet: a package still on its way, a
 * file not yet packaged, an observation still running, a failed package. The publisher's
 * settings are read and changed through the API; bad ones are refused and change nothing.
 * Then 0019 and 0020 on an ops-db that already holds data: rows stay, free-text targets stay
 * text, no Source or coordinates are invented, and archived data shows up at once.
 */
import { Migrations, ObsCore, type Observational, type RawData } from "@ccat/core"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as ObsCorePublisher from "../src/ObsCorePublisher.js"
import * as Harness from "./ApiHarness.js"

/** Marks a package ARCHIVED with its size, and its files packaged into it. */
const archive = (pkg: RawData.RawDataPackage, sizeBytes: number, files: ReadonlyArray<{ readonly id: string }> = []) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`update raw_data_package set status = 'completed', size_bytes = ${sizeBytes}, checksum = ${Fixtures.checksum()} where id = ${pkg.id}`
    for (const f of files) yield* sql`update raw_data_file set raw_data_package_id = ${pkg.id}, state = 'packaged' where id = ${f.id}`
  }).pipe(Effect.orDie)

/** A package of an observation's module (pending). */
const packageOf = (w: Fixtures.World, eou: Observational.ExecutedObsUnit, module = 0) =>
  Effect.flatMap(Fixtures.rawDataPackage(w, eou), (pkg) =>
    module === 0
      ? Effect.succeed(pkg)
      : Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`update raw_data_package set instrument_module_id = ${w.modules[module].id} where id = ${pkg.id}`
      ).pipe(Effect.as(pkg))).pipe(Effect.orDie)

const rowsOf = (programId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql.unsafe<Record<string, unknown>>(`select * from ivoa.obscore where ccat_program_id = $1 order by obs_id, ccat_instrument_module`, [
        programId
      ])
  ).pipe(Effect.orDie)

it.layer(Harness.layer(), { timeout: 90_000 })("ivoa.obscore", (it) => {
  it.effect("has exactly the described columns, in order, with their SQL types", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const actual = yield* sql<{ columnName: string; dataType: string }>`
        select column_name, data_type from information_schema.columns
        where table_schema = 'ivoa' and table_name = 'obscore' order by ordinal_position`
      const described = ObsCore.columns.map((c) => ({
        columnName: c.name,
        dataType: c.sqlType === "timestamptz" ? "timestamp with time zone" : c.sqlType
      }))
      expect(actual).toEqual(described)
      // ObsCore 1.1's mandatory set, every one published with a UCD and a utype.
      const mandatory = [
        "dataproduct_type",
        "calib_level",
        "obs_collection",
        "obs_id",
        "obs_publisher_did",
        "access_url",
        "access_format",
        "access_estsize",
        "target_name",
        "s_ra",
        "s_dec",
        "s_fov",
        "s_region",
        "s_resolution",
        "s_xel1",
        "s_xel2",
        "t_min",
        "t_max",
        "t_exptime",
        "t_resolution",
        "t_xel",
        "em_min",
        "em_max",
        "em_res_power",
        "em_xel",
        "o_ucd",
        "pol_states",
        "pol_xel",
        "facility_name",
        "instrument_name"
      ]
      expect(ObsCore.publishedColumns.map((c) => c.name).sort()).toEqual([...mandatory].sort())
      expect(ObsCore.publishedColumns.filter((c) => c.ucd === undefined || c.utype === undefined)).toEqual([])
    }).pipe(Effect.orDie))

  it.effect("one row per archived observation and module, with ObsCore's values; what is not archived is hidden", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const w = yield* Fixtures.world.pipe(Effect.orDie)
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      const publisher = yield* admin.catalog.updatePublisher({
        payload: { baseUrl: "https://ccat.example.org/archive/", authority: "ivo://ccat.example.org/raw" }
      })
      expect(publisher.baseUrl).toBe("https://ccat.example.org/archive")
      const source = yield* admin.catalog.createSource({ payload: { name: `Deep56 ${Fixtures.suffix()}`, raDeg: 24.5, decDeg: -32.5 } })
      yield* admin.catalog.updateObsUnit({ path: { id: w.obsUnit.id }, payload: { sourceId: source.id } })
      yield* admin.catalog.updateProgram({ path: { id: w.program.id }, payload: { proprietaryPeriodDays: 30 } })
      yield* admin.catalog.updateInstrumentModule({
        path: { id: w.modules[0].id },
        payload: {
          band: { minHz: 250e9, maxHz: 310e9 },
          dataproductType: "timeseries",
          polStates: "/I/Q/U/",
          fovDeg: 1.3,
          resolutionArcsec: 23
        }
      })

      // Archived: both modules of `done`; module 0 in two packages.
      const done = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      const files = yield* Effect.all([Fixtures.rawDataFile(w, done), Fixtures.rawDataFile(w, done)]).pipe(Effect.orDie)
      const [p1, p2, p3] = yield* Effect.all([packageOf(w, done), packageOf(w, done), packageOf(w, done, 1)])
      yield* archive(p1, 2048, [files[0]])
      yield* archive(p2, 1025, [files[1]])
      yield* archive(p3, 10)
      // Hidden: a package still travelling; an unpackaged file; a running observation; a failed package.
      const travelling = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      yield* packageOf(w, travelling)
      const unpackaged = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      yield* archive(yield* packageOf(w, unpackaged), 100)
      yield* Fixtures.rawDataFile(w, unpackaged).pipe(Effect.orDie)
      const running = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      yield* sql`update executed_obs_unit set end_at = null, status = 'in_progress' where id = ${running.id}`.pipe(Effect.orDie)
      yield* archive(yield* packageOf(w, running), 100)
      const failed = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      yield* archive(yield* packageOf(w, failed), 100)
      const broken = yield* packageOf(w, failed)
      yield* sql`update raw_data_package set status = 'failed', error_message = 'test' where id = ${broken.id}`.pipe(Effect.orDie)

      const rows = yield* rowsOf(w.program.id)
      expect(rows.map((r) => [r.obsId, r.ccatInstrumentModule])).toEqual([[done.id, "280GHz"], [done.id, "350GHz"]])
      const [row, other] = rows
      const did = `ivo://ccat.example.org/raw?${done.id}/${w.modules[0].id}`
      const start = new Date("2026-05-01T03:00:00Z")
      const end = new Date("2026-05-01T04:00:00Z")
      expect(row).toMatchObject({
        dataproductType: "timeseries",
        calibLevel: 0,
        obsCollection: "CCAT",
        obsPublisherDid: did,
        accessUrl: ObsCore.datalinkUrl("https://ccat.example.org/archive", did),
        accessFormat: "application/x-votable+xml;content=datalink",
        accessEstsize: 4, // ceil((2048 + 1025) / 1024): an estimate never below the size
        targetName: source.name,
        sRa: 24.5,
        sDec: -32.5,
        sFov: 1.3,
        sRegion: "Circle ICRS 24.5 -32.5 0.65",
        sResolution: 23,
        tExptime: 3600,
        polStates: "/I/Q/U/",
        polXel: 3,
        facilityName: "FYST",
        instrumentName: "Prime-Cam",
        ccatProgramId: w.program.id,
        ccatPackages: 2
      })
      expect(decodeURIComponent(String(row.accessUrl).split("?ID=")[1])).toBe(did)
      expect(row.tMin).toBeCloseTo(ObsCore.mjd(start), 9)
      expect(row.tMin).toBeCloseTo(61161.125, 9) // 2026-05-01T03:00Z
      expect(row.tMax).toBeCloseTo(ObsCore.mjd(end), 9)
      expect(row.emMin).toBeCloseTo(299_792_458 / 310e9, 12)
      expect(row.emMax).toBeCloseTo(299_792_458 / 250e9, 12)
      expect((row.ccatPublicFrom as Date).toISOString()).toBe("2026-05-31T04:00:00.000Z")
      // The second module has no facts recorded: ObsCore's nulls, not invented values.
      expect([other.emMin, other.sFov, other.sRegion, other.dataproductType, other.accessEstsize, other.sRa]).toEqual([
        null,
        null,
        null,
        null,
        1,
        24.5
      ])

      // Once the last file is packaged and archived, the observation appears.
      const [late] = yield* sql<
        { id: string }
      >`select id from raw_data_file where executed_obs_unit_id = ${unpackaged.id} and state = 'filed'`.pipe(Effect.orDie)
      yield* archive(yield* packageOf(w, unpackaged), 100, [late])
      expect((yield* rowsOf(w.program.id)).map((r) => r.obsId)).toContain(unpackaged.id)
      // A program without a proprietary period is never public.
      yield* admin.catalog.updateProgram({ path: { id: w.program.id }, payload: { proprietaryPeriodDays: null } })
      expect((yield* rowsOf(w.program.id)).map((r) => r.ccatPublicFrom)).toEqual([null, null, null])
    }))

  it.effect("publisher settings: read by every role, changed by admins; bad ones refused, changing nothing", () =>
    Effect.gen(function* () {
      const adminToken = yield* Harness.tokenFor({ role: "admin" })
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist" }))
      const before = yield* scientist.catalog.getPublisher()
      const bad = (body: unknown) => Harness.raw("PATCH", "/api/v1/obscore/publisher", { token: adminToken, body: JSON.stringify(body) })
      const answers = yield* Effect.all([
        bad({ baseUrl: "ftp://ccat.example.org" }),
        bad({ baseUrl: "https://ccat.example.org/x?y=1" }),
        bad({ authority: "ccat.example.org" }),
        bad({ authority: "ivo://ccat example" }),
        bad({ collection: "" }),
        bad({ baseUrl: "https://ok.example.org", extra: 1 })
      ])
      expect(answers.map((a) => a.status)).toEqual([422, 422, 400, 400, 400, 400])
      expect(answers[0].json.field).toBe("baseUrl")
      expect(yield* scientist.catalog.getPublisher()).toEqual(before)
      const refused = yield* Effect.either(scientist.catalog.updatePublisher({ payload: { collection: "mine" } }))
      expect(refused._tag === "Left" && refused.left._tag).toBe("Forbidden")

      // At start, from the environment: a bad value stops the start, naming it, and writes nothing.
      const fromEnv = (vars: Record<string, string>) =>
        ObsCorePublisher.fromEnvironment.pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)))),
          Effect.either
        )
      const badEnv = yield* fromEnv({ CCAT_PUBLIC_URL: "https://ccat.example.org/", CCAT_IVOA_AUTHORITY: "ccat" })
      expect(badEnv._tag === "Left" && badEnv.left.message).toBe(
        "ObsCore publisher: authority must be an IVOA authority like ivo://ccat.example.org/archive (letters, digits, . _ ~ -)"
      )
      expect(yield* scientist.catalog.getPublisher()).toEqual(before)
      expect((yield* fromEnv({}))._tag).toBe("Right")
      expect(yield* scientist.catalog.getPublisher()).toEqual(before)
      yield* fromEnv({ CCAT_PUBLIC_URL: "https://ccat.example.org/dc//", CCAT_OBS_COLLECTION: "CCAT raw" })
      expect(yield* scientist.catalog.getPublisher()).toEqual({ ...before, baseUrl: "https://ccat.example.org/dc", collection: "CCAT raw" })
    }))
})

/** The migrator as a release that shipped only these migrations would run it. */
const runOnly = (names: ReadonlyArray<string>) =>
  Migrator.make({})({
    loader: Migrator.fromRecord(Object.fromEntries(names.map((n) => [n, Migrations.migrations[n]!]))),
    table: Migrations.table
  })

it.layer(TestDatabase.layerEmpty, { timeout: 90_000 })("upgrade to 0019 and 0020", (it) => {
  it.effect("keeps an ops-db's rows and free-text targets, invents no Source, and lists its archived data in ObsCore", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // Apply everything before 0019 one by one, as releases did.
      const earlier = Object.keys(Migrations.migrations).sort().filter((n) => n < "0019")
      for (let i = 1; i <= earlier.length; i++) yield* runOnly(earlier.slice(0, i))
      // An ops-db in use, written as the releases before 0019 wrote it.
      const [site] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('chile', 'cl', 'secondary') returning id`
      const [source] = yield* sql<{ id: string }>`
        insert into data_location (site_id, name, type, technology, driver_config, priority)
        values (${site.id}, 'chile-source', 'SOURCE', 'disk', '{"root":"/s"}', 0) returning id`
      const [obs] = yield* sql<{ id: string }>`insert into observatory (name) values ('CCAT') returning id`
      const [tel] = yield* sql<{ id: string }>`insert into telescope (observatory_id, name) values (${obs.id}, 'FYST') returning id`
      const [ins] = yield* sql<{ id: string }>`insert into instrument (telescope_id, name) values (${tel.id}, 'Prime-Cam') returning id`
      const [mod] = yield* sql<
        { id: string }
      >`insert into instrument_module (instrument_id, name) values (${ins.id}, '280GHz') returning id`
      const [prog] = yield* sql<{ id: string }>`insert into observing_program (name) values ('deep') returning id`
      const [unit0] = yield* sql<
        { id: string }
      >`insert into obs_unit (observing_program_id, instrument_id, name, target) values (${prog.id}, ${ins.id}, 'd56', 'Deep56') returning id`
      const w = { obsUnit: { id: unit0.id }, program: { id: prog.id }, modules: [{ id: mod.id }] }
      const eou = { id: randomUUID() }
      yield* sql`insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status) values (${eou.id}, ${unit0.id}, '2026-05-01T03:00:00Z', '2026-05-01T04:00:00Z', 'completed')`
      const [pkg] = yield* sql<{ id: string }>`
        insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
        values (${eou.id}, ${mod.id}, ${`packages/${randomUUID()}.tar`}, 5000, ${Fixtures.checksum()}, 'completed') returning id`
      yield* sql`insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id, raw_data_package_id, state)
        values (${randomUUID()}, ${eou.id}, ${mod.id}, 'scan/a.fits', 5000, ${Fixtures.checksum()}, ${source.id}, ${pkg.id}, 'packaged')`
      const before = yield* sql<{ n: number }>`select count(*)::int as n from obs_unit`

      const applied = yield* Migrations.run
      expect(applied.map(([id]) => id)).toEqual(expect.arrayContaining([19, 20]))
      const [unit] = yield* sql<
        { target: string; sourceId: string | null; observingModeId: string | null; subObservingProgramId: string | null }
      >`
        select target, source_id, observing_mode_id, sub_observing_program_id from obs_unit where id = ${w.obsUnit.id}`
      expect(unit).toEqual({ target: "Deep56", sourceId: null, observingModeId: null, subObservingProgramId: null })
      expect((yield* sql<{ n: number }>`select count(*)::int as n from obs_unit`)[0].n).toBe(before[0].n)
      expect((yield* sql<{ n: number }>`select count(*)::int as n from source`)[0].n).toBe(0)
      const [program] = yield* sql<
        { proprietaryPeriodDays: number | null }
      >`select proprietary_period_days from observing_program where id = ${w.program.id}`
      expect(program.proprietaryPeriodDays).toBeNull()
      const rows = yield* rowsOf(w.program.id)
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({
        obsId: eou.id,
        targetName: "Deep56",
        sRa: null,
        sDec: null,
        calibLevel: 0,
        accessEstsize: 5,
        ccatPublicFrom: null
      })
      expect(String(rows[0].accessUrl)).toMatch(/^http:\/\/127\.0\.0\.1:8080\/api\/v1\/datalink\?ID=ivo%3A%2F%2Fccat\.invalid%2Farchive%3F/)

      // The database refuses what the API refuses, whoever writes.
      const refusals = yield* Effect.all([
        Effect.either(sql`insert into source (name, ra_deg, dec_deg) values ('bad ra', 360, 0)`),
        Effect.either(sql`insert into source (name, ra_deg, dec_deg) values ('bad dec', 0, 91)`),
        Effect.either(sql`insert into source (name, ra_deg, dec_deg) values ('nan', 'NaN', 0)`),
        Effect.either(sql`insert into source (name) values ('nowhere')`),
        Effect.either(sql`insert into source (name, ra_deg) values ('half', 1)`),
        Effect.either(sql`update instrument_module set em_min = 0.002, em_max = 0.001 where id = ${w.modules[0].id}`),
        Effect.either(sql`update obs_unit set source_id = ${randomUUID()} where id = ${w.obsUnit.id}`)
      ])
      expect(refusals.map((r) => r._tag)).toEqual(["Left", "Left", "Left", "Left", "Left", "Left", "Left"])
      yield* sql`insert into source (name, solar_system) values ('Jupiter', true)`
      expect((yield* Effect.either(sql`insert into source (name, solar_system) values ('JUPITER', true)`))._tag).toBe("Left")
    }).pipe(Effect.orDie))
})
