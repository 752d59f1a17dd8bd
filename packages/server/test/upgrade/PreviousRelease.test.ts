/**
 * A rolling upgrade from the previous release (the last `vX.Y.Z` tag): its `ccat serve` runs
 * every site's workers on an ops-db it migrated itself; this release's migrations are applied
 * while they run; filings keep flowing to the archive with the old workers alone, then with this
 * release's workers beside them. Real PostgreSQL, the old release as a real built process.
 */
import { Accounts, Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import { createClient } from "@ccat/client"
import * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import * as Main from "../../src/Main.js"
import * as MigrationPlan from "../../src/upgrade/MigrationPlan.js"
import { freePort, startNode, tempDir, waitFor, type Ccat } from "../support.js"
import { previousRelease } from "./PreviousRelease.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

/** The embedded default's topology with a short bundle wait, written as a file both releases read. */
const configFile = async (dir: string): Promise<string> => {
  const folder = (name: string) => path.join(dir, "locations", name)
  const file = path.join(dir, "ccat.json")
  await fs.writeFile(
    file,
    JSON.stringify({
      sites: [
        {
          name: "chile",
          shortName: "cl",
          role: "secondary",
          locations: [
            { name: "chile-source", type: "SOURCE", technology: "disk", driver: { root: folder("chile-source") } },
            { name: "chile-buffer", type: "BUFFER", technology: "disk", driver: { root: folder("chile-buffer") } }
          ]
        },
        {
          name: "cologne",
          shortName: "col",
          role: "main",
          locations: [
            { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: folder("cologne-buffer") } },
            {
              name: "cologne-archive",
              type: "LONG_TERM_ARCHIVE",
              technology: "disk",
              driver: { root: folder("cologne-archive") },
              retention: { keepForever: true }
            }
          ]
        }
      ],
      routes: [{ from: "chile", to: "cologne", adapter: "local" }],
      policy: { bundleMaxWait: "1 seconds" }
    })
  )
  return file
}

/** Starts the previous release's `ccat ARGS` as its operators would: `node dist/cli.js`. */
const oldCcat = (cli: string, args: ReadonlyArray<string>, env: Record<string, string>): Ccat =>
  startNode([cli, ...args], path.dirname(cli), { ...process.env, CCAT_LOG_FORMAT: "logfmt", ...env })

/**
 * An instrument, its planned observation and an instrument account with a token, in SQL the
 * previous release's schema takes (an expand-only upgrade keeps it valid on the new one).
 */
const setUp = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const s = randomBytes(3).toString("hex")
  const [o] = yield* sql<{ id: string }>`insert into observatory (name) values (${`upgrade ${s}`}) returning id`
  const [t] = yield* sql<{ id: string }>`insert into telescope (observatory_id, name) values (${o.id}, 'FYST') returning id`
  const [i] = yield* sql<{ id: string }>`insert into instrument (telescope_id, name) values (${t.id}, 'Prime-Cam') returning id`
  yield* sql`insert into instrument_module (instrument_id, name) values (${i.id}, '280GHz')`
  const [p] = yield* sql<{ id: string }>`insert into observing_program (name) values (${`upgrade-${s}`}) returning id`
  const [u] = yield* sql<
    { id: string }
  >`insert into obs_unit (observing_program_id, instrument_id, name) values (${p.id}, ${i.id}, 'deep56') returning id`
  const [a] = yield* sql<
    { id: string }
  >`insert into account (name, display_name, role) values (${`daq-${s}`}, 'DAQ', 'instrument') returning id`
  yield* sql`insert into instrument_access (account_id, instrument_id) values (${a.id}, ${i.id})`
  const token = yield* Accounts.generateToken
  yield* sql`insert into api_token (account_id, label, prefix, secret_sha256) values (${a.id}, 'upgrade', ${token.prefix}, ${token.secretSha256})`
  return { obsUnitId: u.id, token: token.token }
})

/** Writes `count` small files at the SOURCE and files them as one closed observation. */
const fileObservation = (baseUrl: string, token: string, obsUnitId: string, sourceRoot: string, count: number) =>
  Effect.promise(async () => {
    const id = randomUUID()
    const files = []
    for (let f = 0; f < count; f++) {
      const relativePath = `upgrade/${id}/chunk-${f}.fits`
      const bytes = randomBytes(2048 + f)
      await fs.mkdir(path.dirname(path.join(sourceRoot, relativePath)), { recursive: true })
      await fs.writeFile(path.join(sourceRoot, relativePath), bytes)
      files.push({
        id: randomUUID(),
        module: "280GHz",
        relativePath,
        sizeBytes: bytes.length,
        checksum: `sha256:${createHash("sha256").update(bytes).digest("hex")}`
      })
    }
    const client = await createClient({ baseUrl, token })
    try {
      await client.fileObservation({ id, obsUnitId, startAt: new Date(Date.now() - 60_000), sourceLocation: "chile-source", files })
      await client.closeObservation(id, { endAt: new Date(), status: "completed" })
    } finally {
      await client.close()
    }
    return id
  })

/** Waits until every file of the observations is packaged and every package ARCHIVED (completed). */
const archived = (observations: ReadonlyArray<string>, files: number, timeoutMs: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const deadline = Date.now() + timeoutMs
    while (true) {
      const [r] = yield* sql<{ files: number; packaged: number; packages: number; archived: number }>`
        select count(*)::int as files, count(*) filter (where f.state = 'packaged')::int as packaged,
          count(distinct p.id)::int as packages, count(distinct p.id) filter (where p.status = 'completed')::int as archived
        from raw_data_file f left join raw_data_package p on p.id = f.raw_data_package_id
        where f.executed_obs_unit_id in ${sql.in(observations)}`
      if (r.files === files && r.packaged === files && r.packages > 0 && r.archived === r.packages) return r
      if (Date.now() > deadline) return yield* Effect.die(new Error(`not archived within ${timeoutMs} ms: ${JSON.stringify(r)}`))
      yield* Effect.sleep("250 millis")
    }
  })

describe("an upgrade from the previous release", () => {
  it("keeps the previous release's workers archiving through the migration, then beside this release's", async () => {
    const started = Date.now()
    const release = previousRelease()
    const builtIn = Date.now() - started
    const phases: Array<string> = []
    const phase = (what: string) => phases.push(`${what} at ${((Date.now() - started) / 1000).toFixed(1)} s`)
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* TestDatabase.freshDatabase
          const dir = yield* Effect.promise(() => tempDir("ccat-upgrade-"))
          dirs.push(dir)
          const config = yield* Effect.promise(() => configFile(dir))
          const sourceRoot = path.join(dir, "locations", "chile-source")
          const port = yield* Effect.promise(() => freePort())
          const baseUrl = `http://127.0.0.1:${port}`

          // The previous release migrates the empty ops-db to its schema and runs every site's workers.
          const old = yield* Effect.acquireRelease(
            Effect.sync(() =>
              oldCcat(release.cli, ["serve", "--config", config, "--port", String(port), "--workers", "all"], {
                DATABASE_URL: Redacted.value(db.url)
              })
            ),
            (p) =>
              Effect.promise(async () => {
                if (p.child.exitCode === null) {
                  p.child.kill("SIGKILL")
                  await p.exited
                }
              })
          )
          yield* Effect.promise(() => waitFor(`${baseUrl}/api/v1/health`, 60_000, old))

          yield* Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const oldApplied = (yield* sql<{ name: string }>`select name from ccat_migrations`).length
            const { obsUnitId, token } = yield* setUp
            const first = yield* fileObservation(baseUrl, token, obsUnitId, sourceRoot, 3)

            // What `ccat migrate --check` says of this upgrade: nothing that needs the old release stopped.
            const plan = yield* MigrationPlan.plan
            expect(plan.pending.filter((m) => m.step === "contract").map((m) => `${m.id}_${m.name}`)).toEqual([])
            // This release's migrations, applied while the old workers hold and take jobs.
            phase("old release serving, first observation filed")
            const applied = yield* Migrations.run
            expect(applied.map(([id]) => id)).toEqual(plan.pending.map((m) => m.id))
            phase(`${applied.length} migrations applied`)
            const all = yield* sql<{ name: string }>`select name from ccat_migrations`
            expect(all.length).toBe(oldApplied + applied.length)
            expect(all.length).toBe(Object.keys(Migrations.migrations).length)

            const second = yield* fileObservation(baseUrl, token, obsUnitId, sourceRoot, 2)
            yield* archived([first, second], 5, 60_000)
            phase("archived by the old workers on the new schema")

            // This release's workers join (as `ccat worker --site` would start them), beside the old ones.
            const provider = ConfigProvider.fromMap(new Map([["DATABASE_URL", Redacted.value(db.url)], ["CCAT_LOG_LEVEL", "error"]]))
            for (const site of ["chile", "cologne"]) {
              yield* Main.worker({ configFile: config, site }).pipe(Effect.withConfigProvider(provider), Effect.forkScoped)
            }
            // two observations at once, as two instruments would file them: the workers' work is the same
            const [third, fourth] = yield* Effect.all([
              fileObservation(baseUrl, token, obsUnitId, sourceRoot, 2),
              fileObservation(baseUrl, token, obsUnitId, sourceRoot, 2)
            ], { concurrency: 2 })
            yield* archived([first, second, third, fourth], 9, 60_000)
            phase("archived by old and new workers together")
          }).pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(db.url))))

          old.child.kill("SIGTERM")
          const code = yield* Effect.promise(() => old.exited)
          expect(code, old.output()).toBe(0)
          // The old release never met a schema it could not read or write (transient errors it retries are not the point here).
          expect(old.output()).not.toMatch(/does not exist|violates .*constraint|invalid input value|cannot cast|level=FATAL/)
          phase("old release stopped")
          console.log(
            `upgrade from ${release.tag} (${release.commit.slice(0, 12)}, dependencies ${release.dependencies}): ` +
              `${release.built ? "built" : "reused"} in ${builtIn} ms; ${phases.join("; ")}`
          )
        })
      )
    )
  }, 180_000)
})
