/**
 * The TAP service over HTTP on an in-process server holding archived data: each caller sees
 * what its token may see (anonymous the public program, a scientist also its granted one,
 * operators everything), the query forms astronomers send (cones, DISTANCE, time ranges,
 * instruments, TOP, MAXREC, COUNT per instrument, CSV), the VOSI documents and TAP_SCHEMA
 * (generated from ObsCore.ts, hidden columns absent), the credentials-required mount `/tap/auth`
 * (HTTP Basic, for TOPCAT and STILTS), and attacks answered with a VOTable error
 * document that changes nothing.
 */
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import * as Tap from "./TapClient.js"
import * as TapWorld from "./TapWorld.js"

const phaseOf = (xml: string) => /<uws:phase>(\w+)<\/uws:phase>/.exec(xml)?.[1]

// Reads a job with UWS blocking until it has left the active phases (a bounded number of tries).
const settled = (jobPath: string, token?: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 20; i++) {
      const job = yield* Tap.request(`${jobPath}?WAIT=5`, token === undefined ? {} : { token })
      if (!["PENDING", "QUEUED", "EXECUTING"].includes(phaseOf(job.text) ?? "")) return job
    }
    throw new Error(`job ${jobPath} did not finish`)
  })

const ids = (csv: string) => csv.trim().split("\r\n").slice(1).map((line) => line.split(",")[0])

it.layer(Harness.layer(), { timeout: 120_000 })("TAP service", (it) => {
  let world: Effect.Effect.Success<typeof TapWorld.seed>
  let tokens: { scientist: string; operator: string; stranger: string }

  it.effect("each caller sees what its token may see", () =>
    Effect.gen(function* () {
      world = yield* TapWorld.seed
      tokens = {
        scientist: yield* Harness.tokenFor({ role: "scientist", programIds: [world.embargoed.world.program.id] }),
        operator: yield* Harness.tokenFor({ role: "operator" }),
        stranger: yield* Harness.tokenFor({ role: "scientist" })
      }
      const q = "SELECT obs_id, target_name FROM ivoa.obscore ORDER BY t_min"
      const seen = (token?: string) =>
        Effect.map(Tap.query(q, { format: "csv", ...(token === undefined ? {} : { token }) }), (a) => [...new Set(ids(a.text))])
      expect(yield* seen()).toEqual([world.open.observationId])
      expect(yield* seen(tokens.stranger)).toEqual([world.open.observationId])
      expect(yield* seen(tokens.scientist)).toEqual([world.open.observationId, world.embargoed.observationId])
      expect(yield* seen(tokens.operator)).toEqual([world.open.observationId, world.embargoed.observationId, world.closed.observationId])
      // Aggregates count only what the caller sees.
      const count = yield* Tap.query("SELECT COUNT(*) AS n FROM ivoa.obscore")
      expect(Tap.rows(count.text)).toEqual([["2"]])
      // A token that is presented must be valid: no silent downgrade to anonymous.
      const bad = yield* Tap.query(q, { token: "ccat_nope_nope" })
      expect(bad.status).toBe(401)
      expect(Tap.statuses(bad.text)).toEqual(["ERROR"])
    }))

  it.effect("answers the queries astronomers write", () =>
    Effect.gen(function* () {
      const { open, embargoed } = world
      const cone = yield* Tap.query(
        `SELECT TOP 10 obs_id, s_ra, s_dec, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', ${open.ra + 0.1}, ${open.dec})) AS dist
        FROM ivoa.obscore WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', ${open.ra + 0.1}, ${open.dec}, 0.2)) ORDER BY dist`,
        { token: tokens.operator }
      )
      expect(Tap.errorMessage(cone.text)).toBe("")
      expect(cone.status).toBe(200)
      expect(cone.contentType).toContain("application/x-votable+xml")
      expect(Tap.statuses(cone.text)).toEqual(["OK"])
      expect(Tap.fields(cone.text)).toEqual(["obs_id", "s_ra", "s_dec", "dist"])
      const rows = Tap.rows(cone.text)
      expect(rows.map((r) => r[0])).toEqual([open.observationId, open.observationId])
      expect(Number(rows[0]![3])).toBeCloseTo(0.1 * Math.cos((open.dec * Math.PI) / 180), 4)
      // Outside the circle, and the 0 form.
      expect(
        Tap.rows(
          (yield* Tap.query(`SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 0, 0, 1)) = 1`, {
            token: tokens.operator
          })).text
        )
      ).toEqual([])
      expect(
        Tap.rows(
          (yield* Tap.query(`SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 0, 0, 1)) = 0`, {
            token: tokens.operator
          })).text
        )
      ).toHaveLength(6)
      // A time range in MJD, and an instrument.
      const june = yield* Tap.query("SELECT DISTINCT obs_id FROM ivoa.obscore WHERE t_min BETWEEN 61201 AND 61202.5", {
        token: tokens.operator,
        format: "csv"
      })
      expect(ids(june.text)).toEqual([embargoed.observationId])
      const chai = yield* Tap.query(
        "SELECT obs_id, instrument_name FROM ivoa.obscore WHERE instrument_name = 'CHAI' AND calib_level IN (0, 1)",
        { token: tokens.operator, format: "csv", method: "GET" }
      )
      expect(chai.contentType).toContain("text/csv")
      expect(ids(chai.text)).toEqual([embargoed.observationId, embargoed.observationId])
      // Per instrument, with GROUP BY and ORDER BY an alias.
      const per = yield* Tap.query(
        "SELECT instrument_name, COUNT(*) AS n, MIN(t_min) AS first FROM ivoa.obscore GROUP BY instrument_name ORDER BY instrument_name",
        { token: tokens.operator }
      )
      expect(Tap.rows(per.text).map((r) => r.slice(0, 2))).toEqual([["CHAI", "2"], ["Mod-Cam", "2"], ["Prime-Cam", "2"]])
      // LIKE, ILIKE, functions, IS NULL, OFFSET.
      const like = yield* Tap.query(
        `SELECT TOP 1 UPPER(target_name) AS t, ROUND(s_ra, 2) AS ra FROM ivoa.obscore WHERE target_name ILIKE 'orion%' AND s_fov IS NOT NULL ORDER BY 1 OFFSET 0`
      )
      expect(Tap.rows(like.text)).toEqual([[open.source.toUpperCase(), "83.81"]])
      // TOP bounds silently; MAXREC says OVERFLOW.
      const top = yield* Tap.query("SELECT TOP 2 obs_id FROM ivoa.obscore", { token: tokens.operator })
      expect([Tap.rows(top.text).length, Tap.statuses(top.text)]).toEqual([2, ["OK"]])
      const capped = yield* Tap.query("SELECT obs_id FROM ivoa.obscore", { token: tokens.operator, maxrec: 3 })
      expect([Tap.rows(capped.text).length, Tap.statuses(capped.text)]).toEqual([3, ["OK", "OVERFLOW"]])
      const none = yield* Tap.query("SELECT * FROM ivoa.obscore", { maxrec: 0 })
      expect(Tap.rows(none.text)).toEqual([])
      expect(Tap.fields(none.text)).toHaveLength(30)
    }))

  it.effect("publishes VOSI and TAP_SCHEMA from the ObsCore description, without hidden columns", () =>
    Effect.gen(function* () {
      const availability = yield* Tap.request("/tap/availability")
      expect(availability.text).toContain("<vosi:available>true</vosi:available>")
      const capabilities = yield* Tap.request("/tap/capabilities")
      expect(capabilities.text).toContain('standardID="ivo://ivoa.net/std/TAP"')
      expect(capabilities.text).toContain("ivo://ivoa.net/std/ObsCore#core-1.1")
      const tables = yield* Tap.request("/tap/tables")
      expect(tables.text).toContain("<name>ivoa.obscore</name>")
      expect(tables.text).not.toContain("ccat_")
      const columns = yield* Tap.query(
        "SELECT column_name, unit, ucd FROM TAP_SCHEMA.columns WHERE table_name = 'ivoa.obscore' ORDER BY column_index"
      )
      expect(Tap.errorMessage(columns.text)).toBe("")
      const names = Tap.rows(columns.text).map((r) => r[0])
      expect(names).toHaveLength(30)
      expect(names.filter((n) => n!.startsWith("ccat_"))).toEqual([])
      expect(Tap.rows(columns.text).find((r) => r[0] === "s_ra")).toEqual(["s_ra", "deg", "pos.eq.ra"])
      const schemaTables = yield* Tap.query(`SELECT table_name FROM "TAP_SCHEMA"."tables" ORDER BY table_index`)
      expect(Tap.rows(schemaTables.text).map((r) => r[0])).toEqual([
        "ivoa.obscore",
        "TAP_SCHEMA.schemas",
        "TAP_SCHEMA.tables",
        "TAP_SCHEMA.columns",
        "TAP_SCHEMA.keys",
        "TAP_SCHEMA.key_columns"
      ])
    }))

  it.effect("/tap/auth asks for credentials with a Basic challenge and takes the token as Basic's password, for TOPCAT and STILTS", () =>
    Effect.gen(function* () {
      const form = { LANG: "ADQL", QUERY: "SELECT obs_id FROM ivoa.obscore ORDER BY t_min", RESPONSEFORMAT: "csv" }
      for (const path of [
        "/tap/auth",
        "/tap/auth/capabilities",
        "/tap/auth/tables",
        "/tap/auth/availability",
        "/tap/auth/sync",
        "/tap/auth/async"
      ]) {
        const asked = yield* Tap.request(path, path.endsWith("sync") ? { form } : {})
        expect([path, asked.status, asked.challenge]).toEqual([path, 401, 'Basic realm="CCAT archive", charset="UTF-8"'])
        expect(Tap.errorMessage(asked.text)).toMatch(/log in with any user name and your CCAT API token as the password/)
      }
      const seen = (authorization: string, path = "/tap/auth/sync") =>
        Effect.map(Tap.request(path, { authorization, form }), (a) => ({
          status: a.status,
          challenge: a.challenge,
          ids: [...new Set(ids(a.text))]
        }))
      const granted = [world.open.observationId, world.embargoed.observationId]
      expect(yield* seen(Tap.basic(tokens.scientist))).toEqual({ status: 200, challenge: null, ids: granted })
      expect(yield* seen(Tap.basic(tokens.scientist, ""))).toMatchObject({ ids: granted })
      expect(yield* seen(`Bearer ${tokens.scientist}`)).toMatchObject({ ids: granted })
      // Basic works on /tap too (a client that sends it unasked); the anonymous mount never asks.
      expect(yield* seen(Tap.basic(tokens.scientist), "/tap/sync")).toMatchObject({ ids: granted })
      expect((yield* Tap.request("/tap/sync", { form })).challenge).toBeNull()
      // A wrong password, no password, garbage: refused, asked again (TOPCAT prompts anew), never anonymous.
      for (const authorization of [
        Tap.basic("ccat_nope_nope"),
        Tap.basic(""),
        "Basic !!!",
        `Basic ${Buffer.from("token-without-colon").toString("base64")}`,
        "Digest x"
      ]) {
        expect(yield* seen(authorization)).toEqual({ status: 401, challenge: 'Basic realm="CCAT archive", charset="UTF-8"', ids: [] })
      }
      expect((yield* Tap.request("/tap/sync", { authorization: Tap.basic("ccat_nope_nope"), form })).status).toBe(401)
      // The mount's documents and jobs point back into it, so a client keeps its credentials.
      const capabilities = yield* Tap.request("/tap/auth/capabilities", { authorization: Tap.basic(tokens.scientist) })
      expect(capabilities.text).toMatch(/<accessURL use="base">http:\/\/[^<]+\/tap\/auth<\/accessURL>/)
      const created = yield* Tap.request("/tap/auth/async", { authorization: Tap.basic(tokens.scientist), form: { ...form, PHASE: "RUN" } })
      expect(created.status).toBe(303)
      const job = new URL(created.location!).pathname
      expect(job).toMatch(/^\/tap\/auth\/async\/[^/]+$/)
      expect((yield* Tap.request(job)).status).toBe(401)
      const jobId = job.split("/").pop()!
      expect(yield* Tap.request(`/tap/async/${jobId}/phase`, { token: tokens.scientist })).toMatchObject({ status: 200 })
    }))

  it.effect("refuses what it does not support and every escape, with an error document that changes nothing", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* Harness.counts(["account", "api_token", "executed_obs_unit", "observing_program"])
      const refused: Array<readonly [string, RegExp]> = [
        ["SELECT ccat_program_id FROM ivoa.obscore", /no column ccat_program_id/],
        ["SELECT obs_id FROM ivoa.obscore WHERE ccat_public_from IS NULL", /no column ccat_public_from/],
        ["SELECT * FROM account", /there is no table account/],
        ["SELECT * FROM public.api_token", /there is no table public\.api_token/],
        ["SELECT * FROM pg_catalog.pg_authid", /there is no table/],
        ["SELECT * FROM ivoa.obscore UNION SELECT * FROM ivoa.obscore", /UNION.*not supported/],
        ["SELECT * FROM ivoa.obscore WHERE obs_id IN (SELECT obs_id FROM ivoa.obscore)", /subqueries are not supported/],
        ["SELECT * FROM ivoa.obscore a JOIN ivoa.obscore b ON a.obs_id = b.obs_id", /JOIN is not supported/],
        ["SELECT * FROM ivoa.obscore, TAP_SCHEMA.tables", /one table/],
        ["SELECT * FROM ivoa.obscore; DELETE FROM account", /one statement per query/],
        ["SELECT * FROM ivoa.obscore WHERE 1=1 -- \n; DROP TABLE account", /one statement per query/],
        ["SELECT * FROM ivoa.obscore WHERE obs_id = '' OR 1=1 /* */", /syntax error/],
        ["SELECT pg_sleep(10) FROM ivoa.obscore", /PG_SLEEP is not a function/],
        ["SELECT obs_id FROM ivoa.obscore WHERE s_ra = 'x'", /compares a number with a string/],
        ["SELECT obs_id FROM ivoa.obscore WHERE COUNT(*) > 1", /aggregate/],
        [
          "SELECT obs_id FROM ivoa.obscore WHERE INTERSECTS(POLYGON('ICRS', 0, 0, 10, 10, 10, 0, 0, 10), s_region) = 1",
          /POLYGON crosses itself: edges 1 and 3 meet/
        ],
        [
          "SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), REGION('Circle ICRS 1 2 3')) = 1",
          /REGION is not supported \(ADQL 2\.1 removed it\)/
        ],
        ["SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('GALACTIC', s_ra, s_dec), CIRCLE('ICRS', 1, 2, 3)) = 1", /must be 'ICRS'/],
        ["SELECT obs_id FROM o.obscore AS o", /there is no table o\.obscore/],
        ["SELECT x.obs_id FROM ivoa.obscore AS o", /x is not the table/],
        ["DELETE FROM account", /syntax error/],
        ["", /QUERY is missing/]
      ]
      for (const [adql, why] of refused) {
        const answer = yield* Tap.query(adql)
        expect([adql, answer.status, Tap.statuses(answer.text)]).toEqual([adql, 400, ["ERROR"]])
        expect(Tap.errorMessage(answer.text)).toMatch(why)
      }
      // A quote inside a literal is data, never SQL.
      const quoted = yield* Tap.query("SELECT obs_id FROM ivoa.obscore WHERE target_name = 'x'' OR ''1''=''1''; DROP TABLE account; --'", {
        token: tokens.operator
      })
      expect(Tap.errorMessage(quoted.text)).toBe("")
      expect([quoted.status, Tap.rows(quoted.text)]).toEqual([200, []])
      // Bad protocol parameters.
      const lang = yield* Tap.request("/tap/sync", { form: { REQUEST: "doQuery", LANG: "SQL", QUERY: "SELECT 1" } })
      expect([lang.status, Tap.errorMessage(lang.text)]).toEqual([400, expect.stringMatching(/LANG=SQL is not supported/)])
      const format = yield* Tap.request("/tap/sync", {
        form: { LANG: "ADQL", QUERY: "SELECT TOP 1 obs_id FROM ivoa.obscore", RESPONSEFORMAT: "fits" }
      })
      expect([format.status, Tap.errorMessage(format.text)]).toEqual([400, expect.stringMatching(/fits is not offered/)])
      const maxrec = yield* Tap.request("/tap/sync", {
        form: { LANG: "ADQL", QUERY: "SELECT TOP 1 obs_id FROM ivoa.obscore", MAXREC: "-1" }
      })
      expect(maxrec.status).toBe(400)
      expect(yield* Harness.counts(["account", "api_token", "executed_obs_unit", "observing_program"])).toEqual(before)
      expect((yield* sql<{ n: number }>`select count(*)::int as n from ivoa.obscore`)[0]!.n).toBe(6)
    }).pipe(Effect.orDie))

  it.effect("runs asynchronous jobs (UWS): run at once or later, results, errors, abort, timeouts, owners", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const created = yield* Tap.request("/tap/async", {
        form: { LANG: "ADQL", QUERY: "SELECT obs_id FROM ivoa.obscore ORDER BY obs_id", PHASE: "RUN" }
      })
      expect(created.status).toBe(303)
      const job = new URL(created.location!).pathname
      const done = yield* settled(job)
      expect(phaseOf(done.text)).toBe("COMPLETED")
      expect(done.text).toContain(`${job}/results/result`)
      expect(Tap.rows((yield* Tap.request(`${job}/results/result`)).text)).toEqual([[world.open.observationId], [world.open.observationId]])

      // PENDING until told to run; only its owner reaches it.
      const pending = yield* Tap.request("/tap/async", {
        token: tokens.operator,
        form: { LANG: "ADQL", QUERY: "SELECT COUNT(*) FROM ivoa.obscore", RESPONSEFORMAT: "csv" }
      })
      const mine = new URL(pending.location!).pathname
      expect((yield* Tap.request(`${mine}/phase`, { token: tokens.operator })).text).toBe("PENDING")
      expect((yield* Tap.request(mine, { token: tokens.stranger })).status).toBe(404)
      expect((yield* Tap.request(mine)).status).toBe(404)
      expect((yield* Tap.request("/tap/async", { token: tokens.operator })).text).toContain(mine.split("/").pop()!)
      expect((yield* Tap.request("/tap/async", { token: tokens.stranger })).text).not.toContain(mine.split("/").pop()!)
      expect((yield* Tap.request(`${mine}/phase`, { token: tokens.operator, form: { PHASE: "RUN" } })).status).toBe(303)
      expect(phaseOf((yield* settled(mine, tokens.operator)).text)).toBe("COMPLETED")
      expect((yield* Tap.request(`${mine}/results/result`, { token: tokens.operator })).text).toBe("count\r\n6\r\n")

      // A bad query ends in ERROR with its error document.
      const bad = yield* Tap.request("/tap/async", { form: { LANG: "ADQL", QUERY: "SELECT secret FROM ivoa.obscore", PHASE: "RUN" } })
      const failed = new URL(bad.location!).pathname
      expect(phaseOf((yield* settled(failed)).text)).toBe("ERROR")
      expect(Tap.errorMessage((yield* Tap.request(`${failed}/error`)).text)).toMatch(/no column secret/)

      // While ivoa.obscore is locked: a job aborts on request, and one past its execution duration is cancelled.
      yield* sql.withTransaction(Effect.gen(function* () {
        yield* sql`lock table executed_obs_unit in access exclusive mode`
        const stuck = new URL(
          (yield* Tap.request("/tap/async", { form: { LANG: "ADQL", QUERY: "SELECT obs_id FROM ivoa.obscore", PHASE: "RUN" } })).location!
        ).pathname
        expect((yield* Tap.request(`${stuck}/phase`, { form: { PHASE: "ABORT" } })).status).toBe(303)
        expect((yield* Tap.request(`${stuck}/phase`)).text).toBe("ABORTED")
        const slow =
          new URL((yield* Tap.request("/tap/async", { form: { LANG: "ADQL", QUERY: "SELECT obs_id FROM ivoa.obscore" } })).location!)
            .pathname
        expect((yield* Tap.request(`${slow}/executionduration`, { form: { EXECUTIONDURATION: "1" } })).status).toBe(303)
        yield* Tap.request(`${slow}/phase`, { form: { PHASE: "RUN" } })
        expect(phaseOf((yield* settled(slow)).text)).toBe("ERROR")
        expect(Tap.errorMessage((yield* Tap.request(`${slow}/error`)).text)).toMatch(/ran longer than 1 s/)
      }))

      // Deleted jobs are gone.
      expect((yield* Tap.request(job, { method: "DELETE" })).status).toBe(303)
      expect((yield* Tap.request(job)).status).toBe(404)
    }).pipe(Effect.orDie))
})
