import { assert, describe, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { EmbeddedDatabase, OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const tempDir = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-embedded-"))
    await fs.chmod(dir, 0o755)
    return dir
  }),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

describe("EmbeddedDatabase", () => {
  it.scoped("starts a real PostgreSQL, keeps data across restarts, and leaves no process behind", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const options = { dataDir: path.join(dir, "data") }
      const first = yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* EmbeddedDatabase.start(options)
          yield* Effect.gen(function* () {
            const sql = yield* PgClient.PgClient
            yield* sql`create table kept (v int)`
            yield* sql`insert into kept values (42)`
          }).pipe(Effect.provide(PgClient.layer({ url: db.adminUrl })), Effect.scoped)
          return db.pid
        })
      )
      assert.isFalse(alive(first), "the postmaster is gone once the scope closed")
      const value = yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* EmbeddedDatabase.start(options)
          return yield* Effect.gen(function* () {
            const sql = yield* PgClient.PgClient
            const rows = yield* sql<{ v: number }>`select v from kept`
            return rows[0].v
          }).pipe(Effect.provide(PgClient.layer({ url: db.adminUrl })), Effect.scoped)
        })
      )
      assert.strictEqual(value, 42)
    }))

  it.scoped("a port another server holds fails the start clearly, leaves no process and frees the folder", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const holder = net.createServer()
      yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()))),
        () => Effect.promise(() => new Promise<void>((resolve) => holder.close(() => resolve())))
      )
      const port = (holder.address() as net.AddressInfo).port
      const options = { dataDir: path.join(dir, "data"), port }
      const failed = yield* Effect.flip(Effect.scoped(EmbeddedDatabase.start(options)))
      assert.strictEqual(failed.reason, "StartFailed")
      assert.include(failed.detail, "Address already in use")
      const pidFile = yield* Effect.promise(() => fs.stat(path.join(options.dataDir, "postmaster.pid")).then(() => true, () => false))
      assert.isFalse(pidFile, "no postmaster is left on the folder")
      // The folder is not left claimed: the same folder starts on a free port at once.
      const db = yield* EmbeddedDatabase.start({ dataDir: options.dataDir })
      assert.notStrictEqual(db.port, port)
    }))

  it.scoped("a second process on the same folder uses the running server and leaves it running", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const options = { dataDir: path.join(dir, "data") }
      const first = yield* EmbeddedDatabase.start(options)
      assert.strictEqual(first.owner, process.pid)
      const query = (url: typeof first.adminUrl) =>
        Effect.gen(function* () {
          const sql = yield* PgClient.PgClient
          const rows = yield* sql<{ n: number }>`select 7 as n`
          return rows[0].n
        }).pipe(Effect.provide(PgClient.layer({ url })), Effect.scoped)
      const second = yield* Effect.scoped(
        Effect.gen(function* () {
          const db = yield* EmbeddedDatabase.start(options)
          assert.strictEqual(yield* query(db.adminUrl), 7)
          return db
        })
      )
      assert.strictEqual(second.port, first.port, "the same server, not a second one on the folder")
      assert.strictEqual(second.pid, first.pid)
      assert.isTrue(alive(first.pid), "the owner's server outlives the second user's scope")
      assert.strictEqual(yield* query(first.adminUrl), 7)
    }))

  it.scoped("a folder whose owner was killed hard is taken over: its orphaned server is stopped first", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const dataDir = path.join(dir, "data")
      const source = fileURLToPath(new URL("../src/node/EmbeddedDatabase.ts", import.meta.url))
      // A real process that starts the server and is then SIGKILLed, as a crashed `ccat serve`.
      const script = `const m = await import(${JSON.stringify(source)}); const { db } = await m.startUnscoped({ dataDir: ${
        JSON.stringify(dataDir)
      } }); console.log("PID " + db.pid); setInterval(() => {}, 1000)`
      const orphan = yield* Effect.promise(
        () =>
          new Promise<number>((resolve, reject) => {
            const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
              stdio: ["ignore", "pipe", "inherit"]
            })
            let out = ""
            child.stdout!.on("data", (c) => {
              out += c
              const m = /PID (\d+)/.exec(out)
              if (m) {
                child.kill("SIGKILL")
                resolve(Number(m[1]))
              }
            })
            child.once("exit", (code) => (/PID/.test(out) ? undefined : reject(new Error(`the child exited with ${code}: ${out}`))))
          })
      )
      assert.isTrue(alive(orphan), "SIGKILL of the owner leaves its postmaster running")
      const db = yield* EmbeddedDatabase.start({ dataDir })
      assert.strictEqual(db.owner, process.pid)
      assert.isFalse(alive(orphan), "the orphan was stopped before the folder's new server started")
      assert.notStrictEqual(db.pid, orphan)
    }))

  it.scoped("the OpsDb layer on the embedded server describes itself and migrates", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const info = yield* Effect.scoped(
        Effect.gen(function* () {
          const info = yield* OpsDb.OpsDb
          const sql = yield* PgClient.PgClient
          const rows = yield* sql<{ n: number }>`select count(*)::int as n from ccat_migrations`
          assert.isAtLeast(rows[0].n, 0)
          return info
        }).pipe(Effect.provide(OpsDb.layer({ dataDir: dir })))
      )
      assert.strictEqual(info.kind, "embedded")
      assert.match(info.target, /^127\.0\.0\.1:\d+\/ccat$/)
    }))
})

describe("TestDatabase", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("gives each suite a fresh migrated database", () =>
      Effect.gen(function* () {
        const sql = yield* PgClient.PgClient
        const rows = yield* sql<{ name: string }>`select current_database() as name`
        assert.match(rows[0].name, /^ccat_test_[0-9a-f]{12}$/)
      }))
  })
})
