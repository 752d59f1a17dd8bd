/**
 * `ccat migrate --check` and the rules check: the plan on empty, previous-release and current
 * ops-dbs (changing nothing), every migration added since the last release tag held to the
 * expand/contract rules, and the command itself against a good and a bad database.
 */
import { Migrations } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { execFileSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import * as MigrateCheck from "../../src/cli/MigrateCheck.js"
import * as MigrationPlan from "../../src/upgrade/MigrationPlan.js"
import { undeclared } from "../../src/upgrade/MigrationRules.js"
import { ccat, repoRoot } from "../support.js"
import { lastTag } from "./PreviousRelease.js"
import { migrateTo, run, Url } from "./UpgradeDatabase.js"

/** The migrations the last release tag shipped, by key. */
const released = (): ReadonlyArray<string> => {
  const { commit } = lastTag()
  return execFileSync("git", ["ls-tree", "--name-only", commit, "packages/core/src/internal/migrations/"], {
    cwd: repoRoot,
    encoding: "utf8"
  })
    .split("\n")
    .map((p) => /(\d{4}_[a-z0-9_]+)\.ts$/.exec(p)?.[1])
    .filter((k): k is string => k !== undefined)
    .sort()
}

/** What a plan must leave as it was: relations, types, enum labels, functions, recorded migrations. */
const schemaShape = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [shape] = yield* sql<{ relations: number; types: number; labels: number; functions: number; migrations: number }>`
    select (select count(*)::int from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')) as relations,
      (select count(*)::int from pg_type t join pg_namespace n on n.oid = t.typnamespace where n.nspname = 'public') as types,
      (select count(*)::int from pg_enum) as labels,
      (select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname not in ('pg_catalog', 'information_schema')) as functions,
      0 as migrations`
  const [{ present }] = yield* sql<{ present: boolean }>`select to_regclass('ccat_migrations') is not null as present`
  const migrations = present ? (yield* sql<{ n: number }>`select count(*)::int as n from ccat_migrations`)[0]!.n : -1
  return { ...shape, migrations }
})

const all = Object.keys(Migrations.migrations).sort()

describe("the migration plan", () => {
  it("on an empty ops-db lists every migration as pending and creates nothing", () =>
    run(Effect.gen(function* () {
      const before = yield* schemaShape
      const plan = yield* MigrationPlan.plan
      expect(plan.applied).toEqual([])
      expect(plan.pending.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)).toEqual(all)
      expect(plan.pending[0]!.statements.some((s) => s.summary === "create table raw_data_file")).toBe(true)
      expect(yield* schemaShape).toEqual(before)
      expect(before.migrations).toBe(-1)
    })))

  it("on the previous release's ops-db lists what this release adds, changes nothing, and nothing once applied", () =>
    run(Effect.gen(function* () {
      const tagged = released()
      yield* migrateTo(tagged)
      const before = yield* schemaShape
      const plan = yield* MigrationPlan.plan
      expect(plan.applied.length).toBe(tagged.length)
      expect(plan.pending.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)).toEqual(all.filter((k) => !tagged.includes(k)))
      expect(plan.skipped).toEqual([])
      expect(yield* schemaShape).toEqual(before)
      // the people's rendering and the scripts' form say the same
      const text = MigrateCheck.render(plan, "test", true)
      const json = MigrateCheck.json(plan, "test")
      for (const m of json.pending) {
        expect(text).toContain(`${String(m.id).padStart(4, "0")}_${m.name}: ${m.step === "expand" ? "expand" : "CONTRACT"}`)
      }
      expect(text).toContain("nothing was changed")
      yield* Migrations.run
      const after = yield* MigrationPlan.plan
      expect(after.pending).toEqual([])
      expect(MigrateCheck.render(after, "test", false)).toContain("nothing to apply: the ops-db is up to date")
    })))

  it("warns of a migration numbered below the newest applied one, which the Migrator would never run", () =>
    run(Effect.gen(function* () {
      const tagged = released()
      yield* migrateTo(tagged)
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into ccat_migrations (migration_id, name) values (9999, 'from_a_newer_release')`
      const plan = yield* MigrationPlan.plan
      expect(plan.pending).toEqual([])
      expect(plan.skipped.map((m) => `${String(m.id).padStart(4, "0")}_${m.name}`)).toEqual(all.filter((k) => !tagged.includes(k)))
      if (plan.skipped.length > 0) {
        expect(MigrateCheck.render(plan, "test", false)).toMatch(
          /warning: \d{4}_\w+ was never applied and is numbered below the newest applied one/
        )
      }
    })))
})

describe("taking a migration's statements", () => {
  it("records each statement as sent, with its parameters, answers every query with no rows, and sends nothing", () =>
    run(Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const before = yield* schemaShape
      const migration = Effect.gen(function* () {
        const rows = yield* sql<{ n: number }>`select count(*)::int as n from pg_class where relname = ${"recorded_probe"}`
        yield* sql.unsafe(`create table recorded_probe (id int); create index recorded_probe_id on recorded_probe (id)`).raw
        if (rows.length === 0) yield* sql`insert into recorded_probe (id) values (${7})`
      })
      const statements = yield* MigrationPlan.statementsOf(migration)
      expect(statements).toEqual([
        `select count(*)::int as n from pg_class where relname = $1\n-- parameters: ["recorded_probe"]`,
        "create table recorded_probe (id int)",
        "create index recorded_probe_id on recorded_probe (id)",
        `insert into recorded_probe (id) values ($1)\n-- parameters: [7]`
      ])
      expect(yield* schemaShape).toEqual(before)
    })))
})

describe("the expand/contract rules on this release's migrations", () => {
  it("every migration added since the last release tag is expand-only or declares its contract steps", () =>
    run(Effect.gen(function* () {
      const { tag } = lastTag()
      const tagged = released()
      const problems: Array<string> = []
      for (const key of all.filter((k) => !tagged.includes(k))) {
        const m = yield* MigrationPlan.judgeMigration(key)
        if (m.staleReview) {
          problems.push(
            `${key}: its review in MigrationRules.reviewed was made for other statements; review it again (digest now ${m.digest})`
          )
        }
        for (const s of undeclared(m.statements)) problems.push(`${key}: ${s.summary}\n    ${s.rule}`)
      }
      expect(
        problems,
        `migrations added since ${tag} must not break the previous release's running workers (docs/ops-db.md, "Upgrades"). ` +
          "Make each an expand step, or put `-- ccat:contract <why>` (a contract step, for a release that stops the previous one) " +
          "or `-- ccat:compatible <why>` (the previous release keeps working) right before the statement:\n" + problems.join("\n")
      ).toEqual([])
    })))
})

describe("ccat migrate --check", () => {
  it(
    "prints the plan of the configured ops-db and changes nothing; a database it cannot reach is a one-line error",
    () =>
      run(Effect.gen(function* () {
        yield* migrateTo(released())
        const url = yield* Url
        const before = yield* schemaShape
        const check = ccat(["migrate", "--check", "--sql"], { DATABASE_URL: Redacted.value(url) })
        const code = yield* Effect.promise(() => check.exited)
        expect(code, check.output()).toBe(0)
        expect(check.output()).toMatch(/ops-db external 127\.0\.0\.1:\d+\/ccat_test_\w+: \d+ migrations applied/)
        expect(check.output()).toContain("nothing was changed")
        expect(yield* schemaShape).toEqual(before)

        const bad = ccat(["migrate", "--check"], { DATABASE_URL: "postgres://nobody:secret@127.0.0.1:1/none" })
        expect(yield* Effect.promise(() => bad.exited)).toBe(1)
        expect(bad.output()).toMatch(/^ccat: database: .*Failed to connect.*ECONNREFUSED/m)
        expect(bad.output()).not.toContain("secret")
        expect(bad.output()).not.toMatch(/\n\s+at /)
        const malformed = ccat(["migrate", "--check"], { DATABASE_URL: "host=db user=ccat" })
        expect(yield* Effect.promise(() => malformed.exited)).toBe(1)
        expect(malformed.output()).toContain("DATABASE_URL (or database.url): is not a PostgreSQL URL")
      })),
    120_000
  )
})
