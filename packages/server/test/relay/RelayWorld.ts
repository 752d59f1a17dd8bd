/**
 * Fixtures of the relay tests: the main (`ccat serve`) and the relay (`ccat relay`) as real
 * child processes of the `ccat` bundle the chaos test builds, each on a fixed port so it can be
 * SIGKILLed and started again where clients expect it; the main's ops-db and the relay's own
 * store are two fresh databases of the test PostgreSQL.
 */
import { Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { cliBundle } from "../lifecycle/ChaosWorld.js"
import { freePort, repoRoot } from "../support.js"

/** One `ccat` process, restartable; keeps every life's output for a failure report. */
export class CcatProcess {
  private current: { child: ChildProcess; output: () => string; exited: Promise<number | null> } | undefined
  private readonly lives: Array<() => string> = []

  constructor(
    readonly name: string,
    private readonly cli: string,
    private readonly args: ReadonlyArray<string>,
    private readonly env: Record<string, string>,
    private readonly readyText: string,
    /** A command the process runs under (`ip netns exec NS`, which execs it, so SIGKILL reaches `ccat` itself). */
    private readonly wrap: ReadonlyArray<string> = []
  ) {}

  /** Starts a new life (unless one runs) and waits (at most 60 s) for its ready line. */
  async start(): Promise<void> {
    if (this.current !== undefined && this.current.child.exitCode === null) return
    const argv = [...this.wrap, process.execPath, this.cli, ...this.args]
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: repoRoot,
      env: { ...process.env, ...this.env, CCAT_LOG_FORMAT: "pretty" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    child.stdout!.on("data", (c) => (out += c))
    child.stderr!.on("data", (c) => (out += c))
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    this.current = { child, output: () => out, exited }
    this.lives.push(() => out)
    const deadline = Date.now() + 60_000
    while (!out.includes(this.readyText)) {
      if (child.exitCode !== null) throw new Error(`${this.name} exited while starting:\n${out}`)
      if (Date.now() > deadline) throw new Error(`${this.name} did not start within 60 s:\n${out}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** SIGKILLs the running life, as a power cut would. */
  async kill(): Promise<void> {
    const run = this.current
    if (run === undefined) return
    this.current = undefined
    run.child.kill("SIGKILL")
    await run.exited
  }

  /** Stops the running life with SIGTERM (SIGKILL after 20 s). */
  async stop(): Promise<void> {
    const run = this.current
    if (run === undefined) return
    this.current = undefined
    run.child.kill("SIGTERM")
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 20_000)
    await run.exited
    clearTimeout(timer)
  }

  /** The output of the running life so far. */
  get output(): string {
    return this.current?.output() ?? ""
  }

  /** The last lines of every life. */
  tail(chars = 3000): string {
    return this.lives.map((l, i) => `--- ${this.name} life ${i + 1} ---\n${l().slice(-chars)}`).join("\n")
  }
}

/** The world of the relay tests. */
export interface RelayWorld {
  readonly cli: string
  readonly dir: string
  readonly mainUrl: string
  readonly relayUrl: string
  readonly mainDatabaseUrl: string
  readonly relayDatabaseUrl: string
  readonly main: CcatProcess
  /** A relay process with extra environment (its token is set by `relayWith`), forwarding to the main or to `mainUrl`. */
  readonly relayWith: (env: Record<string, string>, options?: { readonly mainUrl?: string }) => CcatProcess
}

/** The world as a service. */
export class World extends Context.Tag("test/RelayWorld")<World, RelayWorld>() {}

/** The relay's store, as the tests read it. */
export class RelayDb extends Context.Tag("test/RelayDb")<RelayDb, SqlClient.SqlClient>() {}

/** The bundled command; `ccat serve` finds the web UI beside it (`../ui/`, the server package's). */
export const serveBundle = cliBundle

/** Builds the bundle, the two databases (the main's migrated) and the main process (not started). */
export const layer = Layer.unwrapScoped(
  Effect.gen(function* () {
    const cli = yield* serveBundle
    const dir = yield* Effect.acquireRelease(
      // Traversable by the OS user the embedded PostgreSQL runs as (tests run as root).
      Effect.promise(async () => {
        const d = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-relay-"))
        await fs.chmod(d, 0o755)
        return d
      }),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    )
    const main = yield* TestDatabase.freshDatabase
    const relay = yield* TestDatabase.freshDatabase
    const [mainPort, relayPort] = yield* Effect.promise(() => Promise.all([freePort(), freePort()]))
    const mainUrl = `http://127.0.0.1:${mainPort}`
    const mainProcess = new CcatProcess("main", cli.file, ["serve", "--workers", "none"], {
      DATABASE_URL: Redacted.value(main.url),
      CCAT_PORT: String(mainPort),
      CCAT_DATA_DIR: path.join(dir, "main")
    }, "listening on")
    yield* Effect.addFinalizer(() => Effect.promise(() => mainProcess.stop()))
    const relays: Array<CcatProcess> = []
    yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(relays.map((r) => r.stop()))))
    const world: RelayWorld = {
      cli: cli.file,
      dir,
      mainUrl,
      relayUrl: `http://127.0.0.1:${relayPort}`,
      mainDatabaseUrl: Redacted.value(main.url),
      relayDatabaseUrl: Redacted.value(relay.url),
      main: mainProcess,
      relayWith: (env, options = {}) => {
        const p = new CcatProcess("relay", cli.file, ["relay", "--main", options.mainUrl ?? mainUrl, "--port", String(relayPort)], {
          CCAT_RELAY_DATABASE_URL: Redacted.value(relay.url),
          CCAT_RELAY_SYNC_INTERVAL: "1 second",
          CCAT_RELAY_MAX_BACKOFF: "1 second",
          CCAT_RELAY_REQUEST_TIMEOUT: "10 seconds",
          ...env
        }, "CCAT relay listening on")
        relays.push(p)
        return p
      }
    }
    const mainDb = Layer.tap(PgClient.layer(OpsDb.clientConfig(main.url)), (ctx) => Migrations.run.pipe(Effect.provide(ctx))).pipe(
      Layer.orDie
    )
    const relayDb = Layer.effect(RelayDb, SqlClient.SqlClient).pipe(
      Layer.provide(PgClient.layer(OpsDb.clientConfig(relay.url))),
      Layer.orDie
    )
    return Layer.mergeAll(Layer.succeed(World, world), mainDb, relayDb)
  })
)

/** Waits for a condition, polling every 100 ms, failing with `what` after `ms`. */
export const waitFor = <A, R>(what: string, ms: number, check: Effect.Effect<A | undefined | false, never, R>) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (true) {
      const value = yield* check
      if (value !== undefined && value !== false) return value
      if (Date.now() > deadline) return yield* Effect.dieMessage(`timed out after ${ms} ms waiting for ${what}`)
      yield* Effect.sleep("100 millis")
    }
  })
