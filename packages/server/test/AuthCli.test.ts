/**
 * The token commands and the API through the real `ccat` processes, as an operator would run
 * them: create an instrument token (printed once), serve, file with it, list, revoke, refused.
 */
import { Migrations } from "@ccat/core"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
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
          const db = yield* TestDatabase.freshDatabase
          const env = { DATABASE_URL: Redacted.value(db.url) }
          const dir = yield* Effect.promise(() => tempDir("ccat-token-"))
          dirs.push(dir)
          const dataDir = ["--data-dir", path.join(dir, "data")]
          // The instrument must exist before a token can be granted for it.
          const world = yield* Effect.zipRight(Migrations.run, Fixtures.world).pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(db.url))), Effect.orDie)

          const create = ccat(["token", "create", "--account", "prime-cam-daq", "--role", "instrument", "--instrument", world.instrument.id, "--label", "DAQ", ...dataDir], env)
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
                id: randomUUID(), obsUnitId: world.obsUnit.id, startAt: "2026-05-01T03:00:00Z", sourceLocation: world.source.name,
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
})
