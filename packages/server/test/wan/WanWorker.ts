/**
 * A real `ccat worker --site NAME` process, optionally started inside a network namespace
 * (`ip netns exec`, which execs the command, so the pid is the worker's own), with the output of
 * its life kept for a failure report. Stopped with SIGTERM (SIGKILL after a bound) when the
 * scope closes.
 */
import * as Effect from "effect/Effect"
import { spawn, type ChildProcess } from "node:child_process"
import { createWriteStream } from "node:fs"
import * as path from "node:path"
import { repoRoot } from "../support.js"

/** One running worker process. */
export interface WanWorker {
  readonly site: string
  /** What it printed so far. */
  readonly output: () => string
  /** Its exit code or signal, once it ended (undefined while it runs). */
  readonly exited: () => string | undefined
  readonly pid: number
}

/** Options of a worker process. */
export interface Options {
  readonly site: string
  /** The bundled `ccat` command (ChaosWorld's `cliBundle`). */
  readonly cli: string
  readonly configFile: string
  readonly databaseUrl: string
  /** A network namespace to run in; the root namespace when absent. */
  readonly netns?: string
  /** How long it may take to reach its queues (default 90 s). */
  readonly startTimeoutMs?: number
}

const readyLine = (site: string) => `lifecycle workers running at site ${site}`

/** A folder to copy every worker's output into as it comes (`<site>-<pid>.log`), for a failure that needs more than the tail. */
const logDir = process.env["CCAT_WAN_WORKER_LOGS"]

/** Starts the worker and waits until it runs its queues; stops it when the scope closes. */
export const start = (options: Options) =>
  Effect.acquireRelease(
    Effect.async<{ readonly child: ChildProcess; readonly worker: WanWorker }, Error>((resume) => {
      const argv = [process.execPath, options.cli, "worker", "--site", options.site, "--config", options.configFile]
      const full = options.netns === undefined ? argv : ["ip", "netns", "exec", options.netns, ...argv]
      const child = spawn(full[0]!, full.slice(1), {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: options.databaseUrl, CCAT_LOG_FORMAT: "pretty" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let ended: string | undefined
      let ready = false
      const worker: WanWorker = { site: options.site, output: () => out, exited: () => ended, pid: child.pid ?? -1 }
      const timer = setTimeout(() => {
        if (!ready) {
          resume(
            Effect.fail(
              new Error(`worker ${options.site} did not start within ${options.startTimeoutMs ?? 90_000} ms:\n${out.slice(-4000)}`)
            )
          )
        }
      }, options.startTimeoutMs ?? 90_000)
      const log = logDir === undefined ? undefined : createWriteStream(path.join(logDir, `${options.site}-${child.pid}.log`))
      const onOutput = (c: Buffer) => {
        out += c.toString()
        log?.write(c)
        if (!ready && out.includes(readyLine(options.site))) {
          ready = true
          clearTimeout(timer)
          resume(Effect.succeed({ child, worker }))
        }
      }
      child.stdout!.on("data", onOutput)
      child.stderr!.on("data", onOutput)
      child.once("exit", (code, signal) => {
        ended = code !== null ? `exit ${code}` : `signal ${signal}`
        log?.end()
        clearTimeout(timer)
        if (!ready) resume(Effect.fail(new Error(`worker ${options.site} ended (${ended}) while starting:\n${out.slice(-4000)}`)))
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
        child.once("exit", () => {
          clearTimeout(timer)
          resume(Effect.void)
        })
        child.kill("SIGTERM")
      })
  ).pipe(Effect.map(({ worker }) => worker))
