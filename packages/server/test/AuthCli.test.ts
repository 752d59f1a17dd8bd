/**
 * The token and account commands and the API through the real `ccat` processes, as an operator
 * would run them: create an instrument token (printed once), serve, file with it, list, revoke,
 * refused; take a grant back, disable and enable the account, and find each change logged.
 */
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { randomUUID } from "node:crypto"
import { afterAll, describe, expect, it } from "vitest"
import { ccat, freePort, tempDir, waitFor } from "./support.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

describe("ccat token and ccat serve", () => {
  it("creates a token once, files with it through the served API, lists and revokes it", async () => {
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* TestDatabase.migratedDatabase
          const env = { DATABASE_URL: Redacted.value(db.url) }
          const dir = yield* Effect.promise(() => tempDir("ccat-token-"))
          dirs.push(dir)
          const dataDir = ["--data-dir", path.join(dir, "data")]
          // The instrument must exist before a token can be granted for it.
          const world = yield* Fixtures.world.pipe(
            Effect.provide(PgClient.layer(OpsDb.clientConfig(db.url))),
            Effect.orDie
          )

          const create = ccat([
            "token",
            "create",
            "--account",
            "prime-cam-daq",
            "--role",
            "instrument",
            "--instrument",
            world.instrument.id,
            "--label",
            "DAQ",
            ...dataDir
          ], env)
          expect(yield* Effect.promise(() => create.exited)).toBe(0)
          const token = /^(ccat_\w+)$/m.exec(create.output())?.[1]
          expect(token, create.output()).toBeDefined()
          expect(create.output()).toContain("shown this once")

          const port = yield* Effect.promise(() => freePort())
          const server = ccat(["serve", "--port", String(port), ...dataDir], env)
          const base = `http://127.0.0.1:${port}/api/v1`
          yield* Effect.promise(() => waitFor(`${base}/ready`, 60_000, server))
          const file = (t: string) =>
            fetch(`${base}/observations`, {
              method: "POST",
              headers: { authorization: `Bearer ${t}`, "content-type": "application/json" },
              body: JSON.stringify({
                id: randomUUID(),
                obsUnitId: world.obsUnit.id,
                startAt: "2026-05-01T03:00:00Z",
                sourceLocation: world.source.name,
                files: [{ id: randomUUID(), module: "280GHz", relativePath: "a.fits", sizeBytes: 3, checksum: Fixtures.checksum() }]
              })
            })
          const filed = yield* Effect.promise(() => file(token!))
          expect(filed.status).toBe(200)
          expect(((yield* Effect.promise(() => filed.json())) as any).files).toHaveLength(1)
          const docs = yield* Effect.promise(() => fetch(`${base}/docs`))
          expect(docs.status).toBe(200)

          const list = ccat(["token", "list", "--json", ...dataDir], env)
          expect(yield* Effect.promise(() => list.exited)).toBe(0)
          const listed = JSON.parse(list.output().trim().split("\n").at(-1)!) as Array<any>
          expect(listed.map((t) => [t.account, t.role, t.label])).toEqual([["prime-cam-daq", "instrument", "DAQ"]])
          expect(list.output()).not.toContain(token!.split("_")[2])

          const revoke = ccat(["token", "revoke", listed[0].prefix, ...dataDir], env)
          expect(yield* Effect.promise(() => revoke.exited)).toBe(0)
          const refused = yield* Effect.promise(() => file(token!))
          expect(refused.status).toBe(401)
          expect(((yield* Effect.promise(() => refused.json())) as any).reason).toBe("Revoked")
          server.child.kill("SIGINT")
          expect(yield* Effect.promise(() => server.exited)).toBe(0)
        })
      )
    )
  })

  it(
    "takes access back with ccat account: a grant revoked, an account disabled and enabled, the last admin kept; tokens expire by the policy unless asked otherwise",
    async () => {
      await Effect.runPromise(
        Effect.scoped(
          Effect.gen(function* () {
            const db = yield* TestDatabase.migratedDatabase
            const env = { DATABASE_URL: Redacted.value(db.url) }
            const dir = yield* Effect.promise(() => tempDir("ccat-account-"))
            dirs.push(dir)
            const dataDir = ["--data-dir", path.join(dir, "data")]
            const pg = PgClient.layer(OpsDb.clientConfig(db.url))
            const world = yield* Fixtures.world.pipe(Effect.provide(pg), Effect.orDie)
            const run = async (args: ReadonlyArray<string>) => {
              const p = ccat([...args, ...dataDir], env)
              const code = await p.exited
              return { code, out: p.output() }
            }

            const created = yield* Effect.promise(() =>
              run(["token", "create", "--account", "daq", "--role", "instrument", "--instrument", world.instrument.id, "--json"])
            )
            expect(created.code, created.out).toBe(0)
            const daq = JSON.parse(created.out.trim().split("\n").at(-1)!)
            // no expiry asked for: the policy's default lifetime, one year
            expect(Math.abs(Date.parse(daq.expiresAt) - (Date.now() + 365 * 86_400_000))).toBeLessThan(300_000)
            const service = yield* Effect.promise(() =>
              run(["token", "create", "--account", "relay-chile", "--role", "operator", "--never-expires", "--json"])
            )
            expect(JSON.parse(service.out.trim().split("\n").at(-1)!).expiresAt).toBeNull()
            const both = yield* Effect.promise(() =>
              run(["token", "create", "--account", "x", "--role", "operator", "--never-expires", "--expires-in-days", "3"])
            )
            expect([both.code, both.out]).toEqual([1, expect.stringContaining("exclude each other")])

            const port = yield* Effect.promise(() => freePort())
            const server = ccat(["serve", "--port", String(port), ...dataDir], env)
            const base = `http://127.0.0.1:${port}/api/v1`
            yield* Effect.promise(() => waitFor(`${base}/ready`, 60_000, server))
            const file = () =>
              fetch(`${base}/observations`, {
                method: "POST",
                headers: { authorization: `Bearer ${daq.token}`, "content-type": "application/json" },
                body: JSON.stringify({
                  id: randomUUID(),
                  obsUnitId: world.obsUnit.id,
                  startAt: "2026-05-01T03:00:00Z",
                  sourceLocation: world.source.name,
                  files: [{
                    id: randomUUID(),
                    module: "280GHz",
                    relativePath: `${randomUUID()}.fits`,
                    sizeBytes: 3,
                    checksum: Fixtures.checksum()
                  }]
                })
              }).then(async (r) => [r.status, ((await r.json()) as any).reason])
            expect((yield* Effect.promise(file))[0]).toBe(200)

            const listed = yield* Effect.promise(() => run(["account", "list", "--json"]))
            const daqAccess = (JSON.parse(listed.out.trim().split("\n").at(-1)!) as Array<any>).find((a) => a.account === "daq")
            expect(daqAccess).toMatchObject({
              role: "instrument",
              active: true,
              usableTokens: 1,
              instruments: [{ id: world.instrument.id }]
            })

            const revoked = yield* Effect.promise(() => run(["account", "revoke-grant", "daq", "--instrument", world.instrument.id]))
            expect([revoked.code, revoked.out]).toEqual([0, expect.stringContaining("no longer has")])
            expect(yield* Effect.promise(file)).toEqual([403, "Instrument"])
            expect((yield* Effect.promise(() => run(["account", "grant", "daq", "--instrument", world.instrument.id]))).code).toBe(0)
            expect((yield* Effect.promise(file))[0]).toBe(200)

            expect((yield* Effect.promise(() => run(["account", "disable", "daq"]))).code).toBe(0)
            expect(yield* Effect.promise(file)).toEqual([401, "AccountDisabled"])
            expect((yield* Effect.promise(() => run(["account", "enable", "daq"]))).code).toBe(0)
            expect((yield* Effect.promise(file))[0]).toBe(200)

            // bad input changes nothing and says why
            const unknown = yield* Effect.promise(() => run(["account", "disable", "nobody"]))
            expect([unknown.code, unknown.out]).toEqual([1, expect.stringContaining("there is no account nobody")])
            const neither = yield* Effect.promise(() => run(["account", "revoke-grant", "daq"]))
            expect([neither.code, neither.out]).toEqual([1, expect.stringContaining("exactly one of --instrument or --program")])
            expect((yield* Effect.promise(() => run(["token", "create", "--account", "root", "--role", "admin"]))).code).toBe(0)
            const lastAdmin = yield* Effect.promise(() => run(["account", "disable", "root"]))
            expect([lastAdmin.code, lastAdmin.out]).toEqual([1, expect.stringContaining("last active admin")])

            const events = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ toState: string; actor: string }>`
              select e.to_state, e.actor from event_log e join account a on a.id = e.entity_id
              where a.name = 'daq' and e.entity_kind = 'Account' order by e.id`).pipe(Effect.provide(pg), Effect.orDie)
            expect(events.map((e) => e.toState)).toEqual(["active", "granted", "grant-revoked", "granted", "disabled", "active"])
            expect(new Set(events.map((e) => e.actor)).size).toBe(1)
            expect(events[0]!.actor).toMatch(/^cli:/)
            server.child.kill("SIGINT")
            expect(yield* Effect.promise(() => server.exited)).toBe(0)
          })
        )
      )
    },
    400_000
  )
})
