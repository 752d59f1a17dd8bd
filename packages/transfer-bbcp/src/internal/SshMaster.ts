/**
 * One ssh master connection and its files: a folder of its own (mode 0700, `ccat-ssh-<pid>-*` in
 * the temp folder) holding the socket, so no other user can reach the connection through it; the
 * master started in the background (`-N` with `ControlPersist`, so it exits by itself once idle
 * for that long even when the process that started it was killed); its check, its close, and the
 * sweep of folders a killed process left.
 */
import type { TransferEndpoint } from "@ccat/core"
import { TransferError } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import { spawnSync } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** The prefix of the folders holding master sockets, in the temp folder. */
export const folderPrefix = "ccat-ssh-"

/** The ssh options that name a master socket: an endpoint that sets one itself is left alone. */
const controlOption = /^\s*Control(Master|Path|Persist)\b/i

/** ssh binds `<ControlPath>.<16 random characters>` first; a Unix socket path has room for about 104 bytes. */
const maxSocketPath = 104 - 17

/**
 * What a call through the master adds to an endpoint's ssh options. `auto`: a call that finds
 * the master gone (it idled out, or was killed) becomes the new one instead of failing.
 */
export const controlOptions = (socket: string, persistSeconds: number, master: "auto" | "yes" = "auto"): ReadonlyArray<string> => [
  `ControlMaster=${master}`,
  `ControlPath=${socket}`,
  // 0 would keep the master forever
  `ControlPersist=${Math.max(1, Math.round(persistSeconds))}`
]

/**
 * Whether an endpoint's calls can share a master: not when its options name a socket already,
 * nor when the temp folder's path is too long or has characters bbcp's `-T` cannot carry.
 */
export const canShare = (endpoint: TransferEndpoint.Ssh, base = os.tmpdir()): boolean =>
  !(endpoint.sshOptions ?? []).some((o) => controlOption.test(o)) && /^[\w./-]+$/.test(base) &&
  path.join(base, `${folderPrefix}${process.pid}-XXXXXX`, "c").length <= maxSocketPath

/** True when a Unix socket at `socket` accepts a connection (its master is alive). */
const answers = (socket: string): Promise<boolean> =>
  new Promise((resolve) => {
    const s = net.connect({ path: socket })
    const done = (ok: boolean) => {
      s.destroy()
      resolve(ok)
    }
    s.once("connect", () => done(true))
    s.once("error", () => done(false))
    setTimeout(() => done(false), 1000).unref()
  })

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code === "EPERM"
  }
}

/** Removes folders left by processes that are gone and whose master has exited since. */
export const sweep = async (dir = os.tmpdir()): Promise<ReadonlyArray<string>> => {
  const removed: Array<string> = []
  const names = await fs.readdir(dir).catch(() => [] as Array<string>)
  for (const name of names) {
    const m = new RegExp(`^${folderPrefix}(\\d+)-`).exec(name)
    if (m === null || alive(Number(m[1]))) continue
    const folder = path.join(dir, name)
    const st = await fs.lstat(folder).catch(() => undefined)
    if (st === undefined || !st.isDirectory() || st.uid !== process.getuid?.()) continue
    if (await answers(path.join(folder, "c"))) continue
    await fs.rm(folder, { recursive: true, force: true }).then(() => removed.push(folder), () => undefined)
  }
  return removed
}

/** The pid `ssh -O check` reports for the master at the endpoint's socket; undefined when none answers within 5 s. */
export const masterPid = (endpoint: TransferEndpoint.Ssh, ssh: string) =>
  TransferProcess.run({ command: ssh, args: [...TransferHost.sshArgs(endpoint), "-O", "check", endpoint.host] }).pipe(
    Effect.timeout("5 seconds"),
    Effect.map((o) => {
      const m = o.exitCode === 0 ? /pid=(\d+)/.exec(o.stderr) : null
      return m === null ? undefined : Number(m[1])
    }),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * True while the detached master runs. Its parent is whoever adopted it, which in a container
 * may never reap it: an exited master left as a zombie counts as gone.
 */
const running = async (pid: number): Promise<boolean> => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
  if (stat === undefined) return alive(pid)
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
  return state !== "Z" && state !== "X"
}

/** The master is ours when its command line names our socket (a reused pid is someone else's). */
const isOurs = async (pid: number, socket: string): Promise<boolean> =>
  (await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes(socket)

/** A master's folder, socket and the options a call through it adds. */
export interface Files {
  readonly folder: string
  readonly socket: string
}

/** Makes a master's folder (mkdtemp: mode 0700), after sweeping those killed processes left. */
export const makeFiles = async (base = os.tmpdir()): Promise<Files> => {
  await sweep(base).catch(() => undefined)
  const folder = await fs.mkdtemp(path.join(base, `${folderPrefix}${process.pid}-`))
  return { folder, socket: path.join(folder, "c") }
}

/**
 * Starts the master in the background: ssh authenticates, then detaches (`-N` with
 * `ControlPersist`), with the master's pid when `-O check` gave it. Fails with the transfer error
 * ssh's words classify (no route, refused key), the same a call of the transfer would meet;
 * undefined when it failed otherwise, and the transfer then goes on without sharing.
 */
export const start = (endpoint: TransferEndpoint.Ssh, ssh: string, files: Files, persistSeconds: number, adapter: string) =>
  Effect.gen(function* () {
    const master = { ...endpoint, sshOptions: [...(endpoint.sshOptions ?? []), ...controlOptions(files.socket, persistSeconds, "yes")] }
    const outcome = yield* TransferProcess.run({ command: ssh, args: [...TransferHost.sshArgs(master), "-N", endpoint.host] }).pipe(
      Effect.timeout("90 seconds"),
      Effect.option
    )
    if (outcome._tag === "None" || outcome.value.exitCode !== 0) {
      const said = outcome._tag === "None" ? undefined : TransferHost.classifySsh(outcome.value.stderr)
      if (said === undefined) return undefined
      return yield* Effect.fail(TransferError.make(adapter, said.reason, said.line, { exitCode: 255 }))
    }
    const through = { ...endpoint, sshOptions: [...(endpoint.sshOptions ?? []), ...controlOptions(files.socket, persistSeconds)] }
    return { pid: yield* masterPid(through, ssh) }
  }).pipe(Effect.withSpan("SshMaster.start"))

/** Tells the master to exit, kills it if it does not within a few seconds, and removes the folder. */
export const close = (through: TransferEndpoint.Ssh, ssh: string, files: Files, knownPid?: number) =>
  Effect.gen(function* () {
    const pid = (yield* masterPid(through, ssh)) ?? knownPid
    yield* TransferProcess.run({ command: ssh, args: [...TransferHost.sshArgs(through), "-O", "exit", through.host] }).pipe(
      Effect.timeout("5 seconds"),
      Effect.ignore
    )
    if (pid !== undefined) {
      const gone = yield* Effect.promise(async () => {
        for (let i = 0; i < 100 && (await running(pid)); i++) await new Promise((r) => setTimeout(r, 30))
        return !(await running(pid))
      })
      if (!gone && (yield* Effect.promise(() => isOurs(pid, files.socket)))) {
        yield* Effect.sync(() => {
          try {
            process.kill(pid, "SIGKILL")
          } catch {
            // exited meanwhile
          }
        })
      }
    }
    yield* Effect.promise(() => fs.rm(files.folder, { recursive: true, force: true }))
  }).pipe(Effect.withSpan("SshMaster.close"))

/**
 * Closes a master from a process's `exit` listener, where nothing may wait on the event loop:
 * `-O exit` through the socket, SIGTERM to the master it knew if that still runs, the folder removed.
 */
export const closeNow = (through: TransferEndpoint.Ssh, ssh: string, files: Files, knownPid?: number): void => {
  spawnSync(ssh, [...TransferHost.sshArgs(through), "-O", "exit", through.host], { stdio: "ignore", timeout: 2000 })
  if (knownPid !== undefined) {
    let cmdline = ""
    try {
      cmdline = readFileSync(`/proc/${knownPid}/cmdline`, "utf8")
    } catch {
      // gone
    }
    if (cmdline.includes(files.socket)) {
      try {
        process.kill(knownPid, "SIGTERM")
      } catch {
        // exited meanwhile
      }
    }
  }
  rmSync(files.folder, { recursive: true, force: true })
}
