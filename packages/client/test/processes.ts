/**
 * Real processes for the outbox tests: the reference server (`ccat serve`, through the server's
 * own test helpers) and client processes running `fixtures/outboxClient.ts`.
 */
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { ccat, repoRoot, waitFor, type Ccat } from "../../server/test/support.js"

export { freePort, tempDir } from "../../server/test/support.js"

/** A running child and what it printed. */
export type Proc = Ccat

/** Starts a client process of the fixture with the given environment. */
export const clientProcess = (env: Record<string, string>): Proc => {
  const child = spawn(process.execPath, ["--import", "tsx", "packages/client/test/fixtures/outboxClient.ts"], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout!.on("data", (c) => (out += c))
  child.stderr!.on("data", (c) => (out += c))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output: () => out, exited }
}

/** Waits until a process printed something matching `pattern`; fails at once if it exits first. */
export const waitOutput = (proc: Proc, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> =>
  waitUntil(
    `${pattern} in the process's output`,
    () => {
      const match = proc.output().match(pattern) ?? undefined
      if (match === undefined && proc.child.exitCode !== null) {
        throw new Error(`the process exited (${proc.child.exitCode}) before printing ${pattern}:\n${proc.output()}`)
      }
      return match
    },
    ms,
    { intervalMs: 25, detail: () => proc.output() }
  )

/**
 * A fresh, migrated database on the test run's PostgreSQL, for a server to use: starting and
 * stopping `ccat serve` on it is much quicker than on an embedded cluster of its own.
 */
export const freshDatabase = async (): Promise<{ readonly url: string; readonly drop: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const db = await Effect.runPromise(Scope.extend(TestDatabase.migratedDatabase, scope))
  return { url: Redacted.value(db.url), drop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** Starts the reference server on a port, data folder and database, and waits until it answers. */
export const startServer = async (port: number, dataDir: string, databaseUrl: string): Promise<Proc> => {
  // The tests read the server's request log, in its human-readable form.
  const server = ccat(["serve", "--port", String(port), "--data-dir", path.join(dataDir, "data")], {
    DATABASE_URL: databaseUrl,
    CCAT_LOG_FORMAT: "pretty"
  })
  await waitFor(`http://127.0.0.1:${port}/api/v1/health`, 60_000, server)
  return server
}

/** Stops the server as an operator would (Ctrl-C). */
export const stopServer = async (server: Proc): Promise<void> => {
  server.child.kill("SIGINT")
  await server.exited
}

/** The outbox entries the server received, in the order it answered them (from its request log). */
export const receivedIds = (server: Proc): Array<string> =>
  [...server.output().matchAll(/http\.url: \/api\/v1\/health\?outboxItem=([0-9a-f-]{36})/g)].map((m) => m[1]!)
