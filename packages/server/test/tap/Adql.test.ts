/**
 * The ADQL parser and translator without a server: the query forms astronomers send parse and
 * become SQL in which every literal is a bind parameter, only catalogue columns appear, the
 * access rule wraps the query's own condition, and TOP and MAXREC bound the rows fetched.
 */
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import { parse } from "../../src/tap/Adql.js"
import { type Access, translate } from "../../src/tap/AdqlTranslate.js"

const sql = (adql: string, access: Access = { kind: "public" }, maxrec = 100) => {
  const parsed = parse(adql)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  const translated = translate(parsed.right, { access, maxrec })
  if (Either.isLeft(translated)) throw new Error(translated.left.message)
  return translated.right
}
const refusal = (adql: string) => {
  const parsed = parse(adql)
  if (Either.isLeft(parsed)) return parsed.left.message
  const translated = translate(parsed.right, { access: { kind: "all" }, maxrec: 10 })
  return Either.isLeft(translated) ? translated.left.message : "accepted"
}

describe("ADQL translation", () => {
  it("binds every literal and names only catalogue columns", () => {
    const t = sql(
      "select TOP 5 obs_id, s_ra * 2 AS twice FROM ivoa.ObsCore WHERE target_name = 'Orion KL' AND s_dec > -5.5 AND calib_level IN (0, 1) ORDER BY t_min DESC"
    )
    expect(t.text).not.toMatch(/Orion|5\.5|'/)
    expect(t.params).toEqual(["2", "Orion KL", "5.5", "0", "1"])
    expect(t.text).toContain(`t."target_name" = $2::text`)
    expect(t.text).toContain(`order by t."t_min" desc limit 5`)
    expect(t.fields.map((f) => [f.name, f.datatype])).toEqual([["obs_id", "char"], ["twice", "double"]])
    expect(t.fields[0]).toMatchObject({ ucd: "meta.id", utype: "obscore:DataID.observationID" })
  })

  it("ANDs the caller's access rule around the query's own condition", () => {
    const anonymous = sql("SELECT obs_id FROM ivoa.obscore WHERE s_ra > 1 OR 1 = 1")
    expect(anonymous.text).toContain(`where (t."ccat_public_from" <= now()) and (((t."s_ra" > $1::bigint) or ($2::bigint = $3::bigint)))`)
    const scientist = sql("SELECT obs_id FROM ivoa.obscore", { kind: "programs", ids: ["7f0c8a52-0b47-4d1e-9d62-4f7a1f2d0a11"] })
    expect(scientist.text).toContain(`where ((t."ccat_public_from" <= now() or t."ccat_program_id" = any($1::uuid[])))`)
    expect(scientist.params).toEqual([["7f0c8a52-0b47-4d1e-9d62-4f7a1f2d0a11"]])
    expect(sql("SELECT obs_id FROM ivoa.obscore", { kind: "all" }).text).toContain("where (true)")
    // SELECT * is ObsCore's published columns: the hidden ones are never read.
    expect(sql("SELECT * FROM ivoa.obscore").text.split(" from ")[0]).not.toContain("ccat_")
  })

  it("translates the geometry astronomers use: a cone and a distance", () => {
    const cone = sql(
      "SELECT obs_id, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 83.8, -5.4)) AS d FROM ivoa.obscore WHERE 1=CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 83.8, -5.4, 0.5))"
    )
    // The declination band first (cheap), then the great-circle distance.
    expect(cone.text).toContain(
      `(t."s_dec") between ((-$4::double precision)) - ($5::double precision) and ((-$4::double precision)) + ($5::double precision) and degrees(2 * asin(`
    )
    expect(cone.params).toEqual(["83.8", "5.4", "83.8", "5.4", "0.5"])
    expect(sql("SELECT DISTANCE(s_ra, s_dec, 10, 20) FROM ivoa.obscore").fields[0]).toMatchObject({ name: "distance", datatype: "double" })
    expect(sql("SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT(s_ra, s_dec), CIRCLE(1, 2, 3)) = 0").text).toContain(
      '(not ((t."s_dec") between'
    )
  })

  it("bounds rows by TOP and MAXREC, fetching one more to tell an overflow", () => {
    expect([sql("SELECT TOP 5 obs_id FROM ivoa.obscore").fetch, sql("SELECT TOP 5 obs_id FROM ivoa.obscore").maxrec]).toEqual([5, 5])
    expect([
      sql("SELECT obs_id FROM ivoa.obscore", { kind: "all" }, 100).fetch,
      sql("SELECT obs_id FROM ivoa.obscore", { kind: "all" }, 100).maxrec
    ]).toEqual([101, 100])
    expect(sql("SELECT TOP 1000 obs_id FROM ivoa.obscore", { kind: "all" }, 100).fetch).toBe(101)
  })

  it("reads common forms: aggregates, GROUP BY, HAVING, aliases, functions, TAP_SCHEMA", () => {
    const grouped = sql(
      "SELECT instrument_name, COUNT(*) AS n, AVG(t_exptime) FROM ivoa.obscore GROUP BY instrument_name HAVING COUNT(*) > 1 ORDER BY n DESC, 1"
    )
    expect(grouped.text).toContain(`group by t."instrument_name" having (count(*) > $1::bigint) order by "c2" desc, 1`)
    expect(grouped.fields.map((f) => [f.name, f.datatype])).toEqual([["instrument_name", "char"], ["n", "long"], ["avg", "double"]])
    expect(
      sql("SELECT o.obs_id FROM ivoa.obscore AS o WHERE o.t_min BETWEEN 61000 AND 61100.5 AND LOWER(o.target_name) LIKE '%orion%'").params
    ).toEqual(["61000", "61100.5", "%orion%"])
    expect(
      sql("SELECT ROUND(s_ra, 3), ABS(s_dec), LOG10(em_min), COALESCE(target_name, 'none') FROM ivoa.obscore").fields.map((f) => f.datatype)
    ).toEqual(["double", "double", "double", "char"])
    expect(sql(`SELECT "size", column_name FROM TAP_SCHEMA.columns`).text).toMatch(/^select t\."size" as "c1"/)
    expect(sql("SELECT table_name FROM tap_schema.tables").text).toContain("(values ($1::text")
  })

  it("refuses with a clear reason", () => {
    expect(refusal("SELECT obs_id FROM ivoa.obscore WHERE ccat_program_id IS NOT NULL")).toMatch(/has no column ccat_program_id/)
    expect(refusal(`SELECT "OBS_ID" FROM ivoa.obscore`)).toMatch(/has no column "OBS_ID"/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore ORDER BY 3")).toMatch(/select list has 1 column/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore WHERE POINT('ICRS', s_ra, s_dec) = 1")).toMatch(/POINT is only usable inside/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 1, 2, 3)) = 2")).toMatch(
      /= 1 \(true\) or = 0/
    )
    expect(refusal("SELECT obs_id || 1 FROM ivoa.obscore")).toMatch(/\|\| joins strings/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore WHERE obs_id LIKE 3")).toMatch(/LIKE's pattern is a string/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore WHERE")).toMatch(/ADQL syntax error at line 1, column 38, at the end/)
    expect(refusal("SELECT obs_id FROM ivoa.obscore WITH x")).toMatch(/WITH/)
    expect(refusal("x".repeat(100_001))).toMatch(/longer than/)
    expect(refusal("   ")).toMatch(/empty/)
  })
})
