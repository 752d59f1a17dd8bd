/**
 * One ssh connection shared by every ssh call of a transfer. At 220 ms a new ssh connection costs
 * about eight round trips (TCP, key exchange, authentication, the session) before its command
 * runs, and a bbcp transfer makes several: the staging folder, bbcp's own agent, the publish, the
 * destination's checksums. Through a master connection each later call opens only a channel on
 * it (about two round trips).
 *
 * The master's socket lives in a folder of its own (mode 0700, `ccat-ssh-<pid>-*` in the temp
 * folder), so no other user can reach the connection through it. The first call through the
 * socket becomes the master (`ControlMaster=auto`) and detaches; when the transfer ends, however
 * it ends, the master is told to exit (and killed if it does not), and the folder is removed. A
 * process killed outright cannot do that: its master exits by itself once idle for
 * `idleSeconds` (`ControlPersist`), and the next transfer removes a folder whose process is gone
 * and whose socket no longer answers.
 */
import type { TransferEndpoint } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** The prefix of the folders holding master sockets, in the temp folder. */
export const folderPrefix = "ccat-ssh-"

/** Seconds an idle master stays up when nobody tells it to exit (a killed worker's). */
export const defaultIdleSeconds = 30

/** The ssh options that name a master socket: an endpoint that sets one itself is left alone. */
const controlOption = /^\s*Control(Master|Path|Persist)\b/i

/** ssh binds `<ControlPath>.<16 random characters>` first; a Unix socket path has room for about 104 bytes. */
const maxSocketPath = 104 - 17

/** What the shared connection adds to an endpoint's ssh options. */
export const controlOptions = (socket: string, idleSeconds = defaultIdleSeconds): ReadonlyArray<string> => [
  "ControlMaster=auto",
  `ControlPath=${socket}`,
  `ControlPersist=${idleSeconds}`
]

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

/** The pid `ssh -O check` reports for the master, if one is running. */
const masterPid = (endpoint: TransferEndpoint.Ssh, ssh: string) =>
  TransferProcess.run({ command: ssh, args: [...TransferHost.sshArgs(endpoint), "-O", "check", endpoint.host] }).pipe(
    Effect.timeout("5 seconds"),
    Effect.map((o) => {
      const m = /pid=(\d+)/.exec(o.stderr)
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

/** Tells the master to exit, kills it if it does not within a few seconds, and removes the folder. */
const close = (endpoint: TransferEndpoint.Ssh, ssh: string, folder: string, socket: string) =>
  Effect.gen(function* () {
    const pid = yield* masterPid(endpoint, ssh)
    yield* TransferProcess.run({ command: ssh, args: [...TransferHost.sshArgs(endpoint), "-O", "exit", endpoint.host] }).pipe(
      Effect.timeout("5 seconds"),
      Effect.ignore
    )
    if (pid !== undefined) {
      const gone = yield* Effect.promise(async () => {
        for (let i = 0; i < 100 && (await running(pid)); i++) await new Promise((r) => setTimeout(r, 30))
        return !(await running(pid))
      })
      if (!gone && (yield* Effect.promise(() => isOurs(pid, socket)))) {
        yield* Effect.sync(() => {
          try {
            process.kill(pid, "SIGKILL")
          } catch {
            // exited meanwhile
          }
        })
      }
    }
    yield* Effect.promise(() => fs.rm(folder, { recursive: true, force: true }))
  }).pipe(Effect.withSpan("SshMux.close"))

/**
 * The endpoint with a shared connection for the current scope, or the endpoint unchanged where
 * one cannot be had (its options name a socket already, the temp folder's path is too long or
 * has characters bbcp's `-T` cannot carry): sharing saves time, it is never a reason to fail.
 */
export const shared = (
  endpoint: TransferEndpoint.Ssh,
  ssh = "ssh",
  idleSeconds = defaultIdleSeconds
): Effect.Effect<TransferEndpoint.Ssh, never, Scope.Scope> => {
  if ((endpoint.sshOptions ?? []).some((o) => controlOption.test(o))) return Effect.succeed(endpoint)
  const base = os.tmpdir()
  if (!/^[\w./-]+$/.test(base) || path.join(base, `${folderPrefix}${process.pid}-XXXXXX`, "c").length > maxSocketPath) {
    return Effect.succeed(endpoint)
  }
  return Effect.acquireRelease(
    Effect.promise(async () => {
      await sweep(base).catch(() => undefined)
      // mkdtemp creates the folder with mode 0700
      const folder = await fs.mkdtemp(path.join(base, `${folderPrefix}${process.pid}-`))
      const socket = path.join(folder, "c")
      const through: TransferEndpoint.Ssh = {
        ...endpoint,
        sshOptions: [...(endpoint.sshOptions ?? []), ...controlOptions(socket, idleSeconds)]
      }
      return { folder, socket, through }
    }),
    ({ folder, socket, through }) => close(through, ssh, folder, socket)
  ).pipe(Effect.map(({ through }) => through))
}
