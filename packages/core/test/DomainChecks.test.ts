/**
 * Migration 0028's domain checks accept exactly what 0001's accepted, judged by PostgreSQL
 * itself: on every boundary probe and on thousands of values mutated from good ones; every value
 * the old check refused is refused on insert with the domain's error under the old name; and the
 * migration, run on an ops-db that holds rows under the old checks, leaves the new ones validated.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as DomainChecks from "../src/internal/DomainChecks.js"
import migration from "../src/internal/migrations/0028_fast_domain_checks.js"
import * as Fixtures from "../src/testing/Fixtures.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

/** Values one to three random edits away from good ones: where a rule's edge is, an edit crosses it. */
const mutations = (d: DomainChecks.DomainCheck, count: number, seed: number): Array<string> => {
  let state = seed
  const next = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return state % n
  }
  const good = d.probes.filter((p): p is string => p !== null && p.length > 0 && p.length < 200)
  const alphabet = ["/", ".", ":", "\\", "a", "f", "g", "A", "0", "9", "é", " ", "\n", "sha1:", "md5:", "..", "//", "C:/"]
  const out: Array<string> = []
  for (let i = 0; i < count; i++) {
    let v = good[next(good.length)]!
    for (let edits = 1 + next(3); edits > 0; edits--) {
      const at = next(v.length + 1)
      const piece = alphabet[next(alphabet.length)]!
      const kind = next(3)
      v = kind === 0
        ? v.slice(0, at) + piece + v.slice(at)
        : kind === 1
        ? v.slice(0, at) + v.slice(at + 1)
        : v.slice(0, at) + piece + v.slice(at + 1)
    }
    out.push(v)
  }
  return out
}

/** Whether 0001's form accepts each value, as PostgreSQL judges it. */
const acceptedByOriginal = (d: DomainChecks.DomainCheck, values: ReadonlyArray<string | null>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql.unsafe<{ ok: boolean }>(
        `select (${d.original("v")}) is not false as ok from unnest($1::text[]) with ordinality as t(v, n) order by n`,
        [
          values as Array<string | null>
        ]
      )
  ).pipe(Effect.map((rows) => rows.map((r) => r.ok)))

/** The PostgreSQL error a statement failed with (its SQLSTATE, constraint and message), or undefined if it succeeded. */
const failure = <A, E, R>(statement: Effect.Effect<A, E, R>) =>
  statement.pipe(
    Effect.as(undefined),
    Effect.catchAll((e) => Effect.succeed((e as { cause?: { code?: string; constraint?: string; message?: string } }).cause ?? {}))
  )

describe("migration 0028's domain checks", () => {
  it.layer(TestDatabase.layer, { timeout: 120_000 })((it) => {
    it.effect("accept what 0001's accepted on every probe and on mutations of good values, judged by the database", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const probe = DomainChecks.disagreements()
        assert.deepStrictEqual(yield* sql.unsafe(probe.sql, probe.params), [])
        for (const d of DomainChecks.all) {
          const ok = yield* acceptedByOriginal(d, d.probes)
          // both sides of the rules: some accepted, more refused
          assert.isAbove(ok.filter(Boolean).length, 20, d.domain)
          assert.isAbove(ok.filter((x) => !x).length, 60, d.domain)
        }
        const mutated = DomainChecks.disagreements(DomainChecks.all.map((d, i) => [d, mutations(d, 4000, 17 + i)]))
        assert.deepStrictEqual(yield* sql.unsafe(mutated.sql, mutated.params), [])
      }))

    it.effect("are the domains' constraints, validated, under 0001's names", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        for (const d of DomainChecks.all) {
          yield* sql.unsafe(`create domain expected_${d.domain} as text constraint expected check (${d.fast("value")})`)
          const rows = yield* sql.unsafe<{ name: string; valid: boolean; def: string; expected: string }>(
            `select c.conname as name, c.convalidated as valid, pg_get_constraintdef(c.oid) as def,
                    (select pg_get_constraintdef(e.oid) from pg_constraint e where e.contypid = 'expected_${d.domain}'::regtype) as expected
               from pg_constraint c where c.contypid = '${d.domain}'::regtype`
          )
          assert.strictEqual(rows.length, 1)
          assert.strictEqual(rows[0]!.name, d.constraint)
          assert.isTrue(rows[0]!.valid)
          assert.strictEqual(rows[0]!.def, rows[0]!.expected)
        }
      }))

    it.effect("refuse on insert every probe 0001's check refused, with the domain's error, and store every other", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const insert = (path: string | null, checksum: string | null) =>
          sql.unsafe(`insert into data_transfer_package (relative_path, checksum) values ($1, $2)`, [path, checksum])
        for (const d of DomainChecks.all) {
          // relative_path is NOT NULL in every table: its null probe is the column's rule, not the domain's
          const probes = [...new Set(d.probes)].filter((p) => d !== DomainChecks.relativePath || p !== null)
          const ok = yield* acceptedByOriginal(d, probes)
          for (const [i, p] of probes.entries()) {
            const refused = yield* failure(d === DomainChecks.checksum ? insert(`probe/checksum-${i}`, p) : insert(p, null))
            if (ok[i]) {
              assert.isUndefined(refused, `${d.domain} ${JSON.stringify(p)} is refused: ${refused?.message}`)
            } else {
              assert.strictEqual(refused?.code, "23514", `${d.domain} ${JSON.stringify(p)} is stored`)
              assert.strictEqual(refused?.constraint, d.constraint)
              assert.strictEqual(refused?.message, `value for domain ${d.domain} violates check constraint "${d.constraint}"`)
            }
          }
          const [stored] = yield* sql.unsafe<{ n: number }>(
            d === DomainChecks.checksum
              ? `select count(*)::int as n from data_transfer_package where relative_path like 'probe/checksum-%'`
              : `select count(*)::int as n from data_transfer_package where relative_path not like 'probe/checksum-%'`
          )
          assert.strictEqual(stored!.n, ok.filter(Boolean).length, d.domain)
        }
      }))

    it.effect("run on an ops-db with rows under 0001's checks, leave the fast ones validated and the rows as they were", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        for (const d of DomainChecks.all) {
          yield* sql.unsafe(`alter domain ${d.domain} drop constraint ${d.constraint}`)
          yield* sql.unsafe(`alter domain ${d.domain} add constraint ${d.constraint} check (${d.original("value")})`)
        }
        yield* sql.unsafe(
          `insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
           select gen_random_uuid(), $1, $2, 'old/' || i || '/scan.fits', i, 'sha256:' || encode(sha256(i::text::bytea), 'hex'), $3
           from generate_series(1, 2000) i`,
          [eou.id, w.modules[0].id, w.source.id]
        )
        yield* sql.withTransaction(migration)
        const constraints = yield* sql<{ valid: boolean; def: string }>`
          select convalidated as valid, pg_get_constraintdef(oid) as def from pg_constraint
          where contypid in ('checksum'::regtype, 'relative_path'::regtype) order by conname`
        assert.deepStrictEqual(constraints.map((c) => c.valid), [true, true])
        assert.isTrue(constraints.every((c) => !c.def.includes("{")), "a counted repetition is left")
        const [files] = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file where relative_path like 'old/%'`
        assert.strictEqual(files!.n, 2000)
      }))
  })
})
