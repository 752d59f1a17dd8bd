/**
 * The test's PostgreSQL made reachable across an emulated link: the test run's server listens on
 * loopback in the root namespace only, so two small relays (our own code) carry it into cologne.
 * One, in the root namespace, listens on a unix socket and connects to PostgreSQL's TCP port; the
 * other, started in cologne's namespace, listens on cologne's address and connects to that unix
 * socket (unix sockets are not network-namespaced). A process in chile then reaches the ops-db
 * through the router, its delay and its partitions, as Chile's workers reach Cologne's.
 * Scoped: both relays are killed and the socket's folder removed when the scope closes.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { WanWorld } from "./WanWorld.js"

/** Why the relays could not be started. */
export class PgOverWanError extends Data.TaggedError("PgOverWanError")<{
  readonly reason: "BadInput" | "StartFailed"
  readonly message: string
}> {}

/**
 * A relay: `tcp HOST PORT SOCKET` listens on HOST:PORT and forwards to the unix SOCKET;
 * `unix SOCKET HOST PORT` listens on SOCKET and forwards to HOST:PORT. Prints "listening" once it
 * does. Accepted TCP connections get keepalives (idle 5 s), so that, as a PostgreSQL server's
 * kernel would, the cologne side notices a client that vanished behind a partition and closes its
 * session (its locks and open transaction with it) instead of holding it for ever; errors on
 * either side close both.
 */
const relayScript = `
const net = require("node:net")
const [mode, a, b, c] = process.argv.slice(1)
const listen = mode === "tcp" ? { host: a, port: Number(b) } : { path: a }
const target = mode === "tcp" ? { path: c } : { host: b, port: Number(c) }
const server = net.createServer((client) => {
  if (mode === "tcp") { client.setNoDelay(true); client.setKeepAlive(true, 5000) }
  const upstream = net.connect(target)
  if (mode !== "tcp") upstream.setNoDelay(true)
  const close = () => { client.destroy(); upstream.destroy() }
  client.on("error", close); upstream.on("error", close); client.on("close", close); upstream.on("close", close)
  client.pipe(upstream); upstream.pipe(client)
})
server.on("error", (e) => { console.error(String(e)); process.exit(1) })
server.listen(listen, () => console.log("listening"))
`

/** The port the cologne relay listens on. */
export const port = 5432

/** The relays as seen by a test. */
export interface PgOverWan {
  /** `url` with its host and port replaced by the cologne relay's: the ops-db as chile reaches it. */
  readonly urlFromChile: (url: Redacted.Redacted<string>) => Redacted.Redacted<string>
  /** Whether both relays still run (a relay that died would look like a partition that never heals). */
  readonly alive: () => boolean
}

const startRelay = (argv: ReadonlyArray<string>, what: string) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess, PgOverWanError>((resume) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        resume(Effect.fail(new PgOverWanError({ reason: "StartFailed", message: `${what}: not listening within 20 s: ${out}` })))
      }, 20_000)
      const onData = (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes("listening")) {
          clearTimeout(timer)
          child.stdout!.off("data", onData)
          resume(Effect.succeed(child))
        }
      }
      child.stdout!.on("data", onData)
      child.stderr!.on("data", (c: Buffer) => (out += c.toString()))
      child.once("exit", (code) => {
        clearTimeout(timer)
        resume(Effect.fail(new PgOverWanError({ reason: "StartFailed", message: `${what}: exited (${code}) while starting: ${out}` })))
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill("SIGKILL")
      })
  )

/** Starts both relays towards the PostgreSQL at `url` (which must listen on this host's loopback). */
export const make = (world: WanWorld, url: Redacted.Redacted<string>): Effect.Effect<PgOverWan, PgOverWanError, Scope.Scope> =>
  Effect.gen(function* () {
    const u = new URL(Redacted.value(url))
    const pgPort = Number(u.port || "5432")
    if (!["127.0.0.1", "localhost"].includes(u.hostname) || !Number.isInteger(pgPort)) {
      return yield* new PgOverWanError({
        reason: "BadInput",
        message: `the PostgreSQL must listen on loopback with a port, got ${u.hostname}:${u.port}`
      })
    }
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-pgwan-"))),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    )
    const socket = path.join(dir, "pg.sock")
    const root = yield* startRelay([process.execPath, "-e", relayScript, "unix", socket, "127.0.0.1", String(pgPort)], "root relay")
    const cologne = yield* startRelay(
      ["ip", "netns", "exec", world.cologne.netns, process.execPath, "-e", relayScript, "tcp", world.cologne.address, String(port), socket],
      `relay in ${world.cologne.netns}`
    )
    return {
      urlFromChile: (from: Redacted.Redacted<string>) => {
        const v = new URL(Redacted.value(from))
        v.hostname = world.cologne.address
        v.port = String(port)
        return Redacted.make(v.toString())
      },
      alive: () => [root, cologne].every((c) => c.exitCode === null && c.signalCode === null)
    }
  }).pipe(Effect.withSpan("PgOverWan.make"))
