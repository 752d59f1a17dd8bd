/**
 * Runs a transfer tool (rsync, bbcp, ssh) as a child process in its own process group. Transfer
 * tools fork helpers (rsync's receiver, bbcp's agents, the ssh client) that outlive a killed
 * parent and keep copying (bbcp fixture 23), so interruption signals the whole group: SIGTERM,
 * then SIGKILL after a grace period.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"

/** The tool could not be started at all (missing binary, not executable). */
export class SpawnError extends Data.TaggedError("SpawnError")<{ readonly command: string; readonly cause: unknown }> {
  override get message(): string {
    const code = (this.cause as { code?: string } | undefined)?.code
    return code === "ENOENT" ? `${this.command}: not found` : `could not start ${this.command}: ${String(this.cause)}`
  }
  /** True when the binary does not exist (as opposed to failing to run). */
  get missing(): boolean {
    return (this.cause as { code?: string } | undefined)?.code === "ENOENT"
  }
}

/** What to run and how to watch it. */
export interface Spec {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string
  readonly env?: Record<string, string | undefined>
  /** Called for every complete line; `\r` ends a line too (progress meters redraw with it). */
  readonly onLine?: (line: string, stream: "stdout" | "stderr") => void
  /** Between SIGTERM and SIGKILL on interruption (default 3 s). */
  readonly graceMs?: number
  /** Characters of each stream kept for the outcome (the tail; default 64 KiB). */
  readonly keep?: number
}

/** How the tool ended: its code or the signal that ended it, and the tail of its output. */
export interface Outcome {
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Signals every process of a group, ignoring a group that is already gone. */
export const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group has exited already
  }
}

/** True while any process of the group is alive. */
export const groupAlive = (pid: number): boolean => {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

const lineSplitter = (emit: (line: string) => void) => {
  let rest = ""
  return {
    push(chunk: string) {
      const parts = (rest + chunk).split(/\r\n|\r|\n/)
      rest = parts.pop() ?? ""
      for (const p of parts) emit(p)
    },
    flush() {
      if (rest.length > 0) emit(rest)
      rest = ""
    }
  }
}

/**
 * Runs the tool to its end. Interrupting the effect signals the tool's whole process group and
 * waits until the tool has exited, so no helper keeps writing after the caller moved on.
 */
export const run = (spec: Spec): Effect.Effect<Outcome, SpawnError> =>
  Effect.async<Outcome, SpawnError>((resume) => {
    const keep = spec.keep ?? 64 * 1024
    const out = { stdout: "", stderr: "" }
    let exited = false
    const child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: spec.env === undefined ? process.env : { ...process.env, ...spec.env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    const watch = (name: "stdout" | "stderr") => {
      const split = lineSplitter((line) => spec.onLine?.(line, name))
      const stream = child[name]
      stream.setEncoding("utf8")
      stream.on("data", (chunk: string) => {
        out[name] = (out[name] + chunk).slice(-keep)
        split.push(chunk)
      })
      stream.on("end", () => split.flush())
    }
    watch("stdout")
    watch("stderr")
    child.on("exit", () => {
      exited = true
    })
    child.on("error", (cause) => {
      exited = true
      resume(Effect.fail(new SpawnError({ command: spec.command, cause })))
    })
    child.on("close", (exitCode, signal) => {
      exited = true
      resume(Effect.succeed({ exitCode, signal, stdout: out.stdout, stderr: out.stderr }))
    })
    return Effect.async<void>((done) => {
      const pid = child.pid
      if (pid === undefined) return done(Effect.void)
      signalGroup(pid, "SIGTERM")
      const timer = setTimeout(() => signalGroup(pid, "SIGKILL"), spec.graceMs ?? 3000)
      const deadline = Date.now() + (spec.graceMs ?? 3000)
      // the parent may exit before its helpers have finished their own cleanup (rsync's
      // receiver moving a partial file aside): wait for the whole group, then kill stragglers
      const finish = () => {
        if (groupAlive(pid) && Date.now() < deadline) {
          setTimeout(finish, 25)
          return
        }
        clearTimeout(timer)
        signalGroup(pid, "SIGKILL")
        done(Effect.void)
      }
      if (exited && child.exitCode !== null) finish()
      else child.once("exit", finish)
    })
  }).pipe(Effect.withSpan("TransferProcess.run", { attributes: { command: spec.command } }))

/** Quotes one word for a POSIX shell (remote commands over ssh go through one). */
export const shellQuote = (word: string): string => (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)
