/**
 * A real `ccat serve` on a fresh ops-db for the operator-command tests, with the test kit's
 * World (sites, locations, an instrument and a program), tokens for each role, and `run`, which
 * starts the real `ccat` command line (support.ts `ccat()`) against it and keeps stdout apart
 * from stderr, since `--json` output is read from stdout alone.
 */
import { OpsDb } from "@ccat/core/node"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Tokens from "../../src/auth/Tokens.js"
import { ccat, type Ccat, freePort, tempDir } from "../support.js"

/** What a finished `ccat` run printed and how it ended. */
export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** A running server and what the tests need to talk to it and to its database. */
export interface CliWorld {
  readonly url: string
  readonly world: Fixtures.World
  readonly tokens: { readonly operator: string; readonly admin: string; readonly scientist: string; readonly instrument: string }
  /** Runs an effect on the server's ops-db (to arrange rows and check what a command did). */
  readonly db: <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Promise<A>
  /** Runs `ccat ARGS` with `--url` set through CCAT_URL and the given token (none when undefined). */
  readonly run: (args: ReadonlyArray<string>, token?: string, env?: Record<string, string>) => Promise<Run>
  /** Starts `ccat ARGS` like `run`, for commands that wait while the test changes something. */
  readonly spawn: (args: ReadonlyArray<string>, token?: string) => Running
  readonly close: () => Promise<void>
}

/** A `ccat` run in progress: what it printed so far, and its end. */
export interface Running {
  readonly stderr: () => string
  readonly done: Promise<Run>
}

/** Starts `ccat`, keeping stdout and stderr apart. */
export const spawnCcat = (args: ReadonlyArray<string>, env: Record<string, string>): Running => {
  const p: Ccat = ccat(args, env)
  let stdout = ""
  let stderr = ""
  p.child.stdout!.on("data", (c) => (stdout += c))
  p.child.stderr!.on("data", (c) => (stderr += c))
  return { stderr: () => stderr, done: p.exited.then((code) => ({ code, stdout, stderr })) }
}

/** Runs `ccat` to its end, stdout and stderr apart. */
export const runCcat = (args: ReadonlyArray<string>, env: Record<string, string>): Promise<Run> => spawnCcat(args, env).done

/**
 * Waits for the server to answer ready. Each look has its own timeout (a server that accepts
 * connections but never answers must fail the test, not hang it), and a failure shows the log.
 */
const ready = async (url: string, server: Ccat, ms = 90_000) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`ccat serve exited early:\n${server.output()}`)
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 250))
  }
  server.child.kill("SIGKILL")
  throw new Error(`${url} did not answer ready within ${ms} ms:\n${server.output()}`)
}

/** Starts a fresh migrated database, the World, tokens for every role and `ccat serve` on a free port. */
export const start = async (): Promise<CliWorld> => {
  const scope = Effect.runSync(Scope.make())
  const db = await Effect.runPromise(Scope.extend(TestDatabase.migratedDatabase, scope))
  const layer = PgClient.layer(OpsDb.clientConfig(db.url))
  const onDb = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.runPromise(effect.pipe(Effect.provide(layer), Effect.orDie))
  const world = await onDb(Fixtures.world)
  const token = (role: "operator" | "admin" | "scientist" | "instrument") =>
    onDb(Effect.gen(function* () {
      const account = yield* Tokens.ensureAccount({ name: `${role}-${Fixtures.suffix()}`, role })
      if (role === "scientist") yield* Tokens.grantProgram(account.id, world.program.id)
      if (role === "instrument") yield* Tokens.grantInstrument(account.id, world.instrument.id)
      return (yield* Tokens.issue({ accountId: account.id })).token
    }))
  const tokens = {
    operator: await token("operator"),
    admin: await token("admin"),
    scientist: await token("scientist"),
    instrument: await token("instrument")
  }
  const dir = await tempDir("ccat-cli-")
  const port = await freePort()
  const env = { DATABASE_URL: Redacted.value(db.url) }
  const server = ccat(["serve", "--port", String(port), "--workers", "none", "--data-dir", path.join(dir, "data")], {
    ...env,
    CCAT_LOG_FORMAT: "pretty"
  })
  const url = `http://127.0.0.1:${port}`
  await ready(`${url}/api/v1/ready`, server)
  return {
    url,
    world,
    tokens,
    db: onDb,
    // The commands need no database: DATABASE_URL is cleared so they could not cheat by reading it.
    run: (args, t, extra = {}) => runCcat(args, { CCAT_URL: url, ...(t === undefined ? {} : { CCAT_TOKEN: t }), ...extra }),
    spawn: (args, t) => spawnCcat(args, { CCAT_URL: url, ...(t === undefined ? {} : { CCAT_TOKEN: t }) }),
    close: async () => {
      server.child.kill("SIGINT")
      await server.exited
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await fs.rm(dir, { recursive: true, force: true })
    }
  }
}
