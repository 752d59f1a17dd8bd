/**
 * The real peers the notifier's tests deliver to: Debian's `prometheus-alertmanager` (with a
 * webhook receiver, so what Alertmanager itself notifies can be counted too), Debian's aiosmtpd
 * storing each message in a Maildir, and a plain HTTP listener that records webhook bodies and
 * can be started late on a port chosen early (a sink that is down, then back).
 */
import { waitUntil } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "../support.js"

const scratch = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-alerts-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** A child process, stopped (by its own pid) with the scope. */
const child = (command: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const c = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] })
      let out = ""
      c.stdout!.on("data", (d) => (out += d))
      c.stderr!.on("data", (d) => (out += d))
      // A peer that is not installed says so (.ci/run installs it) instead of crashing the worker.
      c.on("error", (e) => (out += `\n${command} cannot be started (is its Debian package installed? see .ci/run): ${e.message}`))
      return { c, output: () => out }
    }),
    ({ c }) =>
      Effect.promise(() => {
        if (c.exitCode !== null || c.pid === undefined) return Promise.resolve()
        const gone = new Promise<void>((r) => c.once("exit", () => r()))
        c.kill("SIGTERM")
        return gone
      })
  )

const alive = (c: ChildProcess, output: () => string) => {
  if (c.exitCode !== null || c.pid === undefined) throw new Error(`peer exited early:\n${output()}`)
}

/** An HTTP listener recording JSON bodies; `start` may come after its port is handed out. */
export const recorder = (port?: number) =>
  Effect.gen(function* () {
    const chosen = port ?? (yield* Effect.promise(freePort))
    const bodies: Array<any> = []
    let server: http.Server | undefined
    const start = Effect.promise(
      () =>
        new Promise<void>((resolve, reject) => {
          server = http.createServer((req, res) => {
            let text = ""
            req.on("data", (d) => (text += d))
            req.on("end", () => {
              bodies.push({ headers: req.headers, body: JSON.parse(text) })
              res.writeHead(200).end("ok")
            })
          })
          server.once("error", reject)
          server.listen(chosen, "127.0.0.1", () => resolve())
        })
    )
    yield* Effect.addFinalizer(() => Effect.promise(() => new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())))))
    return { url: `http://127.0.0.1:${chosen}/hook`, port: chosen, bodies, start }
  })

/** A real Alertmanager that notifies `receiverUrl` (firing and resolved, without waiting to group). */
export const alertmanager = (receiverUrl: string) =>
  Effect.gen(function* () {
    const dir = yield* scratch
    const port = yield* Effect.promise(freePort)
    yield* Effect.promise(() =>
      fs.writeFile(
        path.join(dir, "alertmanager.yml"),
        [
          "route:",
          "  receiver: hook",
          "  group_by: ['...']",
          "  group_wait: 0s",
          "  group_interval: 1s",
          "  repeat_interval: 24h",
          "receivers:",
          "  - name: hook",
          "    webhook_configs:",
          `      - url: ${receiverUrl}`,
          "        send_resolved: true",
          ""
        ].join("\n")
      )
    )
    const p = yield* child("prometheus-alertmanager", [
      `--config.file=${path.join(dir, "alertmanager.yml")}`,
      `--storage.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--cluster.listen-address="
    ])
    const url = `http://127.0.0.1:${port}`
    yield* waitUntil(
      "alertmanager to be ready",
      Effect.promise(async () => {
        alive(p.c, p.output)
        return fetch(`${url}/-/ready`).then((r) => r.ok, () => false)
      }),
      15_000
    )
    /** The alerts Alertmanager holds as active now. */
    const alerts = Effect.promise(() => fetch(`${url}/api/v2/alerts`).then((r) => r.json() as Promise<Array<any>>))
    return { url, alerts }
  })

/** A real SMTP peer (aiosmtpd) storing every message it accepts in a Maildir. */
export const smtp = Effect.gen(function* () {
  const dir = yield* scratch
  const port = yield* Effect.promise(freePort)
  const maildir = path.join(dir, "mail")
  const p = yield* child("/usr/bin/python3", [
    "-m",
    "aiosmtpd",
    "-n",
    "-l",
    `127.0.0.1:${port}`,
    "-c",
    "aiosmtpd.handlers.Mailbox",
    maildir
  ])
  yield* waitUntil(
    "the SMTP peer to accept connections",
    Effect.promise(async () => {
      alive(p.c, p.output)
      return new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          s.end()
          resolve(true)
        })
        s.once("error", () => resolve(false))
      })
    }),
    15_000
  )
  /** Every message stored so far, as raw text. */
  const messages = Effect.promise(async () => {
    const names = await fs.readdir(path.join(maildir, "new")).catch(() => [] as Array<string>)
    return Promise.all(names.sort().map((n) => fs.readFile(path.join(maildir, "new", n), "utf8")))
  })
  return { port, messages }
})
