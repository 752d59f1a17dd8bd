/**
 * The relay placed on an emulated Chile ↔ Cologne link: the main (`ccat serve`) runs in cologne's
 * namespace with its ops-db reached through `PgOverWan` (local to cologne), the relay
 * (`ccat relay`) runs in chile's and reaches the main only across the router (its delay, its
 * partitions). The test itself stands where the instruments do, beside the relay: a bridge
 * carries loopback connections of the test into chile, to the relay's port, and another carries
 * the relay's own store (a database of the test PostgreSQL) into chile's loopback. Bridges go
 * through unix sockets, which are not network-namespaced. Scoped: everything stops with it.
 */
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { CcatProcess, serveBundle } from "../relay/RelayWorld.js"
import { freePort } from "../support.js"
import * as PgOverWan from "./PgOverWan.js"
import * as WanWorld from "./WanWorld.js"

/**
 * A byte bridge: `tcp HOST PORT SOCKET` listens on HOST:PORT and connects each client to the
 * unix SOCKET; `unix SOCKET HOST PORT` listens on SOCKET and connects to HOST:PORT. Prints
 * "listening" once it does; an error on either side closes both.
 */
const bridgeScript = `
const net = require("node:net")
const [mode, a, b, c] = process.argv.slice(1)
const listen = mode === "tcp" ? { host: a, port: Number(b) } : { path: a }
const target = mode === "tcp" ? { path: c } : { host: b, port: Number(c) }
const server = net.createServer((client) => {
  client.setNoDelay(true)
  const upstream = net.connect(target)
  const close = () => { client.destroy(); upstream.destroy() }
  client.on("error", close); upstream.on("error", close); client.on("close", close); upstream.on("close", close)
  client.pipe(upstream); upstream.pipe(client)
})
server.on("error", (e) => { console.error(String(e)); process.exit(1) })
server.listen(listen, () => console.log("listening"))
`

const startBridge = (argv: ReadonlyArray<string>, what: string) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess>((resume) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      const onData = (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes("listening")) resume(Effect.succeed(child))
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", (c: Buffer) => (out += c.toString()))
      child.once("exit", (code) => resume(Effect.dieMessage(`${what}: exited (${code}) while starting: ${out}`)))
    }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error(`${what}: not listening within 20 s`) }), Effect.orDie),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
  )

/** Carries the test's loopback `localPort` to `host:port` as seen from inside namespace `netns`. */
const bridgeInto = (dir: string, name: string, netns: string, host: string, port: number) =>
  Effect.gen(function* () {
    const socket = path.join(dir, `${name}.sock`)
    yield* startBridge(
      ["ip", "netns", "exec", netns, process.execPath, "-e", bridgeScript, "unix", socket, host, String(port)],
      `${name} bridge in ${netns}`
    )
    const localPort = yield* Effect.promise(freePort)
    yield* startBridge([process.execPath, "-e", bridgeScript, "tcp", "127.0.0.1", String(localPort), socket], `${name} bridge on the host`)
    return localPort
  })

/** Carries the host's loopback `port` into namespace `netns`, listening there on `127.0.0.1:inside`. */
const bridgeFrom = (dir: string, name: string, netns: string, port: number, inside: number) =>
  Effect.gen(function* () {
    const socket = path.join(dir, `${name}.sock`)
    yield* startBridge([process.execPath, "-e", bridgeScript, "unix", socket, "127.0.0.1", String(port)], `${name} bridge on the host`)
    yield* startBridge(
      ["ip", "netns", "exec", netns, process.execPath, "-e", bridgeScript, "tcp", "127.0.0.1", String(inside), socket],
      `${name} bridge in ${netns}`
    )
  })

/** The relay world on the link. */
export interface RelayWan {
  readonly wan: WanWorld.WanWorld
  readonly cli: string
  /** The main's URL as the relay in chile reaches it (across the router). */
  readonly mainUrl: string
  /** The relay as the test (the instruments, beside it) reaches it. */
  readonly relayUrl: string
  /** The main's ops-db, for the test's checks (on the host, not across the link). */
  readonly mainDb: Layer.Layer<SqlClient.SqlClient>
  /** The relay's store, for the test's checks. */
  readonly relayDb: Layer.Layer<SqlClient.SqlClient>
  readonly main: CcatProcess
  /** A relay process in chile with this token and extra environment. */
  readonly relay: (token: string, env?: Record<string, string>) => CcatProcess
}

/** The port the main listens on in cologne. */
export const mainPort = 8080
const relayPort = 8081
const storePortInChile = 15432

/** Builds the link (about 220 ms round trip), the databases, the bridges and the two processes (not started). */
export const make = (options: WanWorld.Options = {}) =>
  Effect.gen(function* () {
    const [cli, wan] = yield* Effect.all([serveBundle, WanWorld.make({ sshd: false, ...options })], { concurrency: 2 })
    const dir = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const d = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-relaywan-"))
        await fs.chmod(d, 0o755)
        return d
      }),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    )
    const mainDatabase = yield* TestDatabase.migratedDatabase
    const relayDatabase = yield* TestDatabase.freshDatabase
    const pg = yield* PgOverWan.make(wan, mainDatabase.url)
    const relayStore = new URL(Redacted.value(relayDatabase.url))
    yield* bridgeFrom(dir, "relay-store", wan.chile.netns, Number(relayStore.port || "5432"), storePortInChile)
    relayStore.hostname = "127.0.0.1"
    relayStore.port = String(storePortInChile)
    const relayLocalPort = yield* bridgeInto(dir, "relay-http", wan.chile.netns, "127.0.0.1", relayPort)
    const mainUrl = `http://${wan.cologne.address}:${mainPort}`
    const main = new CcatProcess(
      "main",
      cli.file,
      ["serve", "--workers", "none"],
      {
        DATABASE_URL: Redacted.value(pg.urlFromChile(mainDatabase.url)),
        CCAT_HOST: wan.cologne.address,
        CCAT_PORT: String(mainPort),
        CCAT_DATA_DIR: path.join(dir, "main")
      },
      "listening on",
      ["ip", "netns", "exec", wan.cologne.netns]
    )
    yield* Effect.addFinalizer(() => Effect.promise(() => main.stop()))
    const relays: Array<CcatProcess> = []
    yield* Effect.addFinalizer(() => Effect.promise(() => Promise.all(relays.map((r) => r.stop()))))
    // Migrated before the main's first start (a copy of the template), so the test sets up its world first.
    const mainDbBuilt = yield* Layer.build(PgClient.layer(OpsDb.clientConfig(mainDatabase.url)).pipe(Layer.orDie))
    const relayDbBuilt = yield* Layer.build(PgClient.layer(OpsDb.clientConfig(relayDatabase.url)).pipe(Layer.orDie))
    const world: RelayWan = {
      wan,
      cli: cli.file,
      mainUrl,
      relayUrl: `http://127.0.0.1:${relayLocalPort}`,
      mainDb: Layer.succeedContext(mainDbBuilt),
      relayDb: Layer.succeedContext(relayDbBuilt),
      main,
      relay: (token, env = {}) => {
        const p = new CcatProcess(
          "relay",
          cli.file,
          ["relay", "--main", mainUrl, "--port", String(relayPort)],
          {
            CCAT_RELAY_TOKEN: token,
            CCAT_RELAY_DATABASE_URL: relayStore.toString(),
            CCAT_DATA_DIR: path.join(dir, "relay"),
            ...env
          },
          "CCAT relay listening on",
          ["ip", "netns", "exec", wan.chile.netns]
        )
        relays.push(p)
        return p
      }
    }
    return world
  })
