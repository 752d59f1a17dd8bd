/**
 * Fixtures of the chaos test: a topology on real folders written as a configuration file, real
 * `ccat worker --site NAME` processes that a seeded monkey SIGKILLs at random instants of every
 * stage and restarts, and the ops-db and disk checks of convergence.
 */
import { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { bundleFromSources, testCliErrorVariable, testCliVariable } from "../globalSetup.js"
import { repoRoot } from "../support.js"

/**
 * The `ccat` command bundled from the sources, as the published command is bundled: the one this
 * test run built (the server's globalSetup), or, outside vitest (the benchmarks), one built here
 * and removed with the scope. A worker restarted from it starts in a fraction of a second of CPU
 * instead of the seconds tsx needs to load hundreds of modules, so a test can kill and restart it
 * dozens of times.
 */
export const cliBundle = Effect.suspend(() => {
  const file = process.env[testCliVariable]
  const failed = process.env[testCliErrorVariable]
  if (failed !== undefined) return Effect.dieMessage(failed)
  if (file !== undefined) return Effect.succeed({ file, outDir: path.dirname(file) })
  return Effect.acquireRelease(
    Effect.promise(bundleFromSources),
    ({ outDir }) => Effect.promise(() => fs.rm(outDir, { recursive: true, force: true }))
  )
})

/** One life of a worker process and what it printed. */
interface Life {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same kill schedule, so a failing run
 * can be replayed with `CCAT_CHAOS_SEED`.
 */
export const prng = (seed: number) => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    /** An integer in [min, max]. */
    int: (min: number, max: number) => min + Math.floor(next() * (max - min + 1)),
    /** The items in a random order. */
    shuffle: <A>(items: ReadonlyArray<A>): Array<A> => {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        ;[out[i], out[j]] = [out[j]!, out[i]!]
      }
      return out
    }
  }
}

/**
 * Chile (SOURCE, BUFFER) sends to Cologne (BUFFER, two LONG_TERM_ARCHIVEs, PROCESSING) over a
 * local route; two verified archive copies are required, copies go as soon as that holds, and
 * jobs of a dead worker come back after 3 s. The second archive is a tape library (virtual: its
 * cartridges are files, with mount and seek delays), built by the workers from the file as an
 * operator's would be, so kills also cut tape writes between the cache, the volume and the catalog.
 */
export const chaosConfig = (dir: string) => {
  const root = (name: string) => ({ root: path.join(dir, "locations", name) })
  const keep = { keepForever: true }
  return {
    dataDir: path.join(dir, "data"),
    sites: [
      {
        name: "chile",
        shortName: "cl",
        role: "secondary",
        locations: [
          { name: "chile-source", type: "SOURCE", technology: "disk", driver: root("chile-source") },
          { name: "chile-buffer", type: "BUFFER", technology: "disk", driver: root("chile-buffer") }
        ]
      },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: root("cologne-buffer") },
          { name: "cologne-archive", type: "LONG_TERM_ARCHIVE", technology: "disk", driver: root("cologne-archive"), retention: keep },
          {
            name: "cologne-archive-2",
            type: "LONG_TERM_ARCHIVE",
            technology: "tape",
            priority: 1,
            driver: {
              ...root("cologne-archive-2"),
              library: "virtual",
              volumes: 4,
              volumeBytes: "48 MB",
              drives: 1,
              mountLatency: "20 millis",
              seekLatency: "2 millis",
              keepOnline: false
            },
            retention: { ...keep, deleteConcurrency: 1 }
          },
          { name: "cologne-processing", type: "PROCESSING", technology: "disk", driver: root("cologne-processing") }
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: {
      maxPackageBytes: "3 MB",
      bundleTargetBytes: "10 MB",
      bundleMaxWait: "1 seconds",
      archiveCopies: 2,
      stagingLifetime: "10 seconds",
      jobHeartbeat: "500 millis",
      jobLeaseTimeout: "3 seconds",
      // audits all along: every copy is due again about a minute after it was verified
      audit: { bytesPerSecond: "40 MB", cycleDays: 0.0008, tapeCycleDays: 0.0008, inventoryEveryHours: 0 }
    }
  }
}

/** The configuration as the stages and fixtures see it in the test process. */
export const decodeConfig = (config: ReturnType<typeof chaosConfig>): Topology.Topology => {
  const { dataDir: _, ...topology } = config
  const decoded = Topology.decode(topology)
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

/** The line a worker logs once its queues and planners run. */
const readyLine = (site: string) => `lifecycle workers running at site ${site}`

/** One site's worker process, restarted after every kill; keeps the output of every life for a failure report. */
export class SiteWorker {
  private current: Life | undefined
  private readonly lives: Array<Life> = []

  constructor(
    readonly site: string,
    private readonly cli: string,
    private readonly configFile: string,
    private readonly databaseUrl: string
  ) {}

  /** Starts a new life of the worker (`ccat worker --site NAME --config FILE`) and waits until it runs its queues. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [this.cli, "worker", "--site", this.site, "--config", this.configFile], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: this.databaseUrl, CCAT_LOG_FORMAT: "pretty" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout!.on("data", (c) => (out += c))
    child.stderr!.on("data", (c) => (out += c))
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    const run: Life = { child, output: () => out, exited }
    this.current = run
    this.lives.push(run)
    const deadline = Date.now() + 60_000
    while (!run.output().includes(readyLine(this.site))) {
      if (run.child.exitCode !== null) throw new Error(`worker ${this.site} exited while starting:\n${run.output()}`)
      if (Date.now() > deadline) throw new Error(`worker ${this.site} did not start within 60 s:\n${run.output()}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** SIGKILLs the running life: no finalizer, no graceful stop, as a power cut would. */
  async kill(): Promise<void> {
    const run = this.current
    if (run === undefined) return
    this.current = undefined
    run.child.kill("SIGKILL")
    await run.exited
  }

  /** Stops the running life with SIGTERM (the end of the test). */
  async stop(): Promise<void> {
    const run = this.current
    if (run === undefined) return
    this.current = undefined
    run.child.kill("SIGTERM")
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 20_000)
    await run.exited
    clearTimeout(timer)
  }

  /** Whether the running life exited on its own (a crash the test did not cause). */
  get crashed(): string | undefined {
    const run = this.current
    return run !== undefined && run.child.exitCode !== null ? run.output().slice(-4000) : undefined
  }

  /** The last lines of every life, for a failure report. */
  tail(chars = 3000): string {
    return this.lives.map((l, i) => `--- ${this.site} life ${i + 1} ---\n${l.output().slice(-chars)}`).join("\n")
  }
}

/** Active jobs per queue right now: what a kill at this instant interrupts. */
export const activeJobs = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ queue: string; n: number }>`
    select name as queue, count(*)::int as n from pgboss.job where state = 'active' group by name order by name`)

/** Jobs that are neither finished nor cancelled, per queue and state (what "nothing stuck" looks at). */
export const openJobs = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ queue: string; state: string; n: number }>`
    select name as queue, state::text as state, count(*)::int as n from pgboss.job
    where state in ('created', 'retry', 'active') group by name, state order by name, state`)

/**
 * Names writers use before a file is complete: the disk driver's `.ccat-tmp-*` and the local
 * transfer's `.<name>.ccat-<hex>.part`. A file under such a name is never read as data.
 */
const temporaryName = /^\.ccat-tmp-|^\..+\.ccat-[0-9a-f]+\.part$/

/** Every regular file under a folder, relative, with temporary names apart. */
export const filesUnder = async (root: string): Promise<{ readonly files: Array<string>; readonly temporary: Array<string> }> => {
  const files: Array<string> = []
  const temporary: Array<string> = []
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    if (!e.isFile()) continue
    const rel = path.relative(root, path.join(e.parentPath, e.name))
    if (temporaryName.test(e.name)) temporary.push(rel)
    else files.push(rel)
  }
  return { files: files.sort(), temporary: temporary.sort() }
}
