/**
 * A real InfluxDB 1.x server for tests (Debian's `influxd`): a temporary config and data
 * directory, free loopback ports, authentication on, a database with its own retention policy,
 * a write-only user for the pusher and a read-only one for the dashboard's queries. Torn down
 * with the scope, even when a test left it stopped (SIGSTOP).
 */
import { waitUntil } from "@ccat/core/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "../support.js"

/** One InfluxQL statement's answer, as `/query` returns it with `epoch=ms`. */
export interface Series {
  readonly name: string
  readonly tags?: Record<string, string>
  readonly columns: ReadonlyArray<string>
  readonly values: ReadonlyArray<ReadonlyArray<unknown>>
}

/** A user and its password. */
export interface User {
  readonly name: string
  readonly password: string
}

/** The running server and how to reach it. */
export interface Server {
  /** `http://127.0.0.1:PORT`. */
  readonly base: string
  readonly database: string
  readonly retentionPolicy: string
  readonly admin: User
  readonly writer: User
  readonly reader: User
  readonly process: ChildProcess
  /** Runs one InfluxQL statement; fails with the server's error text. */
  readonly query: (q: string, as?: User) => Promise<ReadonlyArray<Series>>
}

/** The server as a service, so one file shares it. */
export class RealInflux extends Context.Tag("test/RealInflux")<RealInflux, Server>() {}

const basic = (u: User) => `Basic ${Buffer.from(`${u.name}:${u.password}`).toString("base64")}`

const runQuery = async (base: string, database: string, q: string, as?: User): Promise<ReadonlyArray<Series>> => {
  const body = new URLSearchParams({ q, db: database, epoch: "ms" })
  const r = await fetch(`${base}/query`, {
    method: "POST",
    body,
    headers: as === undefined ? {} : { authorization: basic(as) },
    signal: AbortSignal.timeout(15_000)
  })
  const json = (await r.json()) as { error?: string; results?: Array<{ error?: string; series?: Array<Series> }> }
  if (json.error !== undefined) throw new Error(`InfluxDB refused ${q}: ${json.error}`)
  const result = json.results?.[0]
  if (result?.error !== undefined) throw new Error(`InfluxDB refused ${q}: ${result.error}`)
  return result?.series ?? []
}

const waitForPing = (base: string, child: ChildProcess, log: string, ms: number) =>
  waitUntil(
    "influxd to answer /ping",
    async () => {
      if (child.exitCode !== null) {
        throw new Error(`influxd exited with ${child.exitCode}: ${await fs.readFile(log, "utf8").catch(() => "")}`)
      }
      return fetch(`${base}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status === 204, () => false)
    },
    ms,
    { detail: () => readLog(log) }
  )

const readLog = (log: string) => {
  try {
    return readFileSync(log, "utf8")
  } catch {
    return ""
  }
}

const exited = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => (clearTimeout(timer), resolve(true)))
  })

const start = Effect.acquireRelease(
  Effect.promise(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-influx-"))
    const [http, rpc] = [await freePort(), await freePort()]
    const config = [
      "reporting-disabled = true",
      `bind-address = "127.0.0.1:${rpc}"`,
      "[meta]",
      `  dir = "${dir}/meta"`,
      "[data]",
      `  dir = "${dir}/data"`,
      `  wal-dir = "${dir}/wal"`,
      "  query-log-enabled = false",
      "[monitor]",
      "  store-enabled = false",
      "[http]",
      `  bind-address = "127.0.0.1:${http}"`,
      "  auth-enabled = true",
      "  log-enabled = false",
      "[ifql]",
      "  enabled = false",
      "[logging]",
      '  level = "warn"',
      "[continuous_queries]",
      "  enabled = false"
    ].join("\n")
    await fs.writeFile(path.join(dir, "influxdb.conf"), config)
    const log = path.join(dir, "influxd.log")
    const out = await fs.open(log, "w")
    const child = spawn("influxd", ["run", "-config", path.join(dir, "influxdb.conf")], { stdio: ["ignore", out.fd, out.fd] })
    const spawnError = new Promise<never>((_, reject) =>
      child.once(
        "error",
        (e) => reject(new Error(`influxd could not be started (${e.message}): install Debian's influxdb, as .ci/run does`))
      )
    )
    // Handled here too, so a failure to spawn is never an unhandled rejection before the race below.
    spawnError.catch(() => undefined)
    await out.close()
    const base = `http://127.0.0.1:${http}`
    await Promise.race([waitForPing(base, child, log, 30_000), spawnError]).catch(async (e) => {
      await fs.rm(dir, { recursive: true, force: true })
      throw e
    })
    const admin = { name: "admin", password: "admin secret" }
    const writer = { name: "ccat_writer", password: "writer secret" }
    const reader = { name: "grafana", password: "reader secret" }
    const database = "ccat"
    const retentionPolicy = "ops"
    // With auth on and no user yet, InfluxDB takes exactly this one statement unauthenticated.
    await runQuery(base, database, `CREATE USER "admin" WITH PASSWORD '${admin.password}' WITH ALL PRIVILEGES`)
    for (const q of [
      `CREATE DATABASE "${database}" WITH DURATION 30d REPLICATION 1 NAME "${retentionPolicy}"`,
      `CREATE USER "${writer.name}" WITH PASSWORD '${writer.password}'`,
      `GRANT WRITE ON "${database}" TO "${writer.name}"`,
      `CREATE USER "${reader.name}" WITH PASSWORD '${reader.password}'`,
      `GRANT READ ON "${database}" TO "${reader.name}"`
    ]) await runQuery(base, database, q, admin)
    const server: Server & { dir: string } = {
      base,
      database,
      retentionPolicy,
      admin,
      writer,
      reader,
      process: child,
      dir,
      query: (q, as = admin) => runQuery(base, database, q, as)
    }
    return server
  }),
  (server) =>
    Effect.promise(async () => {
      const child = server.process
      child.kill("SIGCONT")
      child.kill("SIGTERM")
      if (!(await exited(child, 10_000))) {
        child.kill("SIGKILL")
        await exited(child, 5000)
      }
      await fs.rm(server.dir, { recursive: true, force: true })
    })
)

/** A fresh InfluxDB for the scope of the layer. */
export const layer = Layer.scoped(RealInflux, start)
