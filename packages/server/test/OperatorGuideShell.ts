/**
 * How OperatorGuide.test.ts runs the guide's shell blocks: each in bash with `set -euo pipefail`,
 * `ccat` defined as the real command (bundled from the sources for this run), the variables the
 * blocks before it exported, in the work folder; blocks run to their end, or left running in
 * their own process group (servers, workers) until stopped.
 */
import { waitUntil } from "@ccat/core/testing"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ccatArgs, repoRoot } from "./support.js"

/** What a finished block printed. */
export interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The file holding the variables the blocks exported so far, sourced by the next block. */
export const statePath = (work: string) => path.join(work, "guide-state.sh")

/** bash with `ccat` defined as the real CLI, the exported variables of earlier blocks, and `set -euo pipefail`. */
const script = (work: string, body: string, keepState: boolean) =>
  [
    "set -euo pipefail",
    // the command bundled from the sources for this run; through tsx, the repository's tsconfig
    // maps @ccat/* to sources whatever the folder
    `ccat() { TSX_TSCONFIG_PATH="${path.join(repoRoot, "tsconfig.json")}" node ${ccatArgs([]).map((a) => `"${a}"`).join(" ")} "$@"; }`,
    `source "${statePath(work)}"`,
    `cd "${work}"`,
    body,
    ...(keepState ? [`export -p > "${statePath(work)}.next"`] : [])
  ].join("\n")

/** Runs a block to its end; its exported variables go to `statePath(work).next`, kept by the caller if it passed. */
export const runBlock = (work: string, body: string): Promise<Ran> =>
  new Promise((resolve) => {
    const child = spawn("bash", ["-c", script(work, body, true)], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c) => (stdout += c))
    child.stderr.on("data", (c) => (stderr += c))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** A block left running, with what it printed. */
export interface Background {
  readonly step: string
  readonly child: ChildProcess
  readonly output: () => string
}

/** Starts a block and leaves it running (a server, a worker). */
export const startBlock = (work: string, step: string, body: string): Background => {
  // its own process group, so stopping it stops ccat and node beneath bash
  // not `exec`: that would skip the `ccat` function for a `ccat` on the PATH (an installed build)
  const child = spawn("bash", ["-c", script(work, body, false)], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" },
    detached: true
  })
  let out = ""
  child.stdout!.on("data", (c) => (out += c))
  child.stderr!.on("data", (c) => (out += c))
  return { step, child, output: () => out }
}

/** Stops every block left running (TERM to its process group, KILL after 20 s) and empties the list. */
export const stopAll = async (running: Array<Background>) => {
  for (const b of running.splice(0)) {
    if (b.child.exitCode !== null || b.child.pid === undefined) continue
    const exited = new Promise((r) => b.child.once("exit", r))
    process.kill(-b.child.pid, "SIGTERM")
    const timer = setTimeout(() => b.child.pid !== undefined && process.kill(-b.child.pid, "SIGKILL"), 20_000)
    await exited
    clearTimeout(timer)
  }
}

/** An exported variable's value after the last block that passed. */
export const stateVar = async (work: string, name: string): Promise<string | undefined> => {
  const text = await fs.readFile(statePath(work), "utf8")
  const m = new RegExp(`^declare -x ${name}="(.*)"$`, "m").exec(text) ?? new RegExp(`^export ${name}=(.*)$`, "m").exec(text)
  return m === null ? undefined : m[1]!.startsWith('"') ? JSON.parse(m[1]!) : m[1]
}

/** Polls `base`/api/v1/ready until the server a background block started answers, saying why it did not. */
export const waitReady = async (b: Background, base: string) => {
  const step = b.step
  const url = `${base}/api/v1/ready`
  let last = ""
  await waitUntil(
    `${url} to answer`,
    async () => {
      if (b.child.exitCode !== null) throw new Error(`${step} exited early:\n${b.output()}`)
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10_000) })
        if (r.ok) return true
        last = `HTTP ${r.status}: ${await r.text()}`
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause
        last = `${String(e)} (${cause?.code ?? ""} ${cause?.message ?? ""})`
      }
      return false
    },
    240_000,
    { detail: () => `last: ${last}\n${b.output()}` }
  )
}

/** Waits until a background block prints `pattern`; it exiting first fails. */
export const waitForLog = async (b: Background, pattern: RegExp) => {
  const step = b.step
  await waitUntil(
    `${step} to log ${pattern}`,
    () => {
      if (pattern.test(b.output())) return true
      if (b.child.exitCode !== null) throw new Error(`${step} exited early:\n${b.output()}`)
      return false
    },
    240_000,
    { detail: () => b.output() }
  )
}
