/**
 * Runs the real `ccat` command line in a child process, as an operator would, for tests of
 * start, health and shutdown: the command bundled from the sources for this run (globalSetup.ts),
 * or the sources through tsx when a file runs without that setup.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { testCliErrorVariable, testCliVariable } from "./globalSetup.js"
import { LoopbackPort } from "@ccat/core/node"

/** The repository's root folder. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

/** A running `ccat` process and what it printed so far. */
export interface Ccat {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** Node's arguments that run `ccat ARGS`. */
export const ccatArgs = (args: ReadonlyArray<string>): Array<string> => {
  const failed = process.env[testCliErrorVariable]
  if (failed !== undefined) throw new Error(failed)
  const bundled = process.env[testCliVariable]
  if (bundled !== undefined) return [bundled, ...args]
  return [
    "--import",
    path.join(repoRoot, "node_modules/tsx/dist/esm/index.mjs"),
    path.join(repoRoot, "packages/server/src/cli.ts"),
    ...args
  ]
}

/** Starts `node ARGV` in `cwd` with `env`, keeping what it prints (stdout and stderr together). */
export const startNode = (argv: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv): Ccat => {
  const child = spawn(process.execPath, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  child.stdout!.on("data", (c) => (out += c))
  child.stderr!.on("data", (c) => (out += c))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output: () => out, exited }
}

/** Starts `ccat ARGS` from the repository root with extra environment variables. */
export const ccat = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Ccat =>
  startNode(ccatArgs(args), repoRoot, { ...process.env, DATABASE_URL: "", ...env })

/** A free TCP port on loopback, outside the ephemeral range that outgoing connections draw from. */
export const freePort = LoopbackPort.freePort

/** A temporary folder the postgres OS user can traverse (mode 0755); removed by the caller. */
export const tempDir = async (prefix: string): Promise<string> => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix))
  await fs.chmod(dir, 0o755)
  return dir
}

/** Polls a URL until it answers 2xx or the deadline passes. */
export const waitFor = async (url: string, ms: number, process?: Ccat): Promise<Response> => {
  const deadline = Date.now() + ms
  let last: unknown
  while (Date.now() < deadline) {
    if (process && process.child.exitCode !== null) throw new Error(`ccat exited early:\n${process.output()}`)
    try {
      // Bounded per request too: a request the server never answers must not outlast the deadline.
      const r = await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.min(5_000, deadline - Date.now()))) })
      if (r.ok) return r
      last = r.status
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`${url} did not answer within ${ms} ms (last: ${String(last)})${process ? `\n${process.output()}` : ""}`)
}

/** Whether a process id is alive. */
export const alive = (pid: number): boolean => {
  try {
    globalThis.process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
