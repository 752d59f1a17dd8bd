/**
 * A route's ssh master outlives its transfer: the route's next transfers ride it without a new
 * connection, it closes after its idle time or at the process's exit, it carries no more
 * transfers at once than the far sshd's MaxSessions, and a master that was killed or broke is
 * replaced without the next transfer noticing. Real ssh and sshd; no bbcp needed (each
 * "transfer" here is a scope holding the connection and making ssh calls through it, as the
 * adapter's transfer does).
 */
import { TransferEndpoint, TransferError } from "@ccat/core"
import { TransferHost } from "@ccat/core/node"
import { BbcpRouteOptions, SshMux } from "@ccat/transfer-bbcp"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../../../scripts/sshd.js"
import { leftovers, until } from "./SshLeftovers.js"

let sshd: Sshd.Sshd
/** An sshd that allows two sessions per connection. */
let narrow: Sshd.Sshd
let dir: string
beforeAll(async () => {
  ;[sshd, narrow] = await Promise.all([
    Sshd.start(),
    Sshd.start({ wrap: ["sh", "-c", `exec "$0" -o MaxSessions=2 "$@"`] })
  ])
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-pool-"))
})
afterEach(() => Effect.runPromise(SshMux.closeAll))
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true })
  await Promise.all([sshd.stop(), narrow.stop()])
})

const endpointAt = (s: Sshd.Sshd) =>
  TransferEndpoint.ssh({ host: s.host, port: s.port, user: s.user, identityFile: s.identityFile, sshOptions: s.sshOptions, path: "/" })

/** One transfer's worth of ssh calls through the route's shared connection. */
const transfer = (settings: SshMux.Settings, script = "echo ok", ssh = "ssh", s = sshd) =>
  Effect.scoped(
    Effect.flatMap(SshMux.shared(endpointAt(s), ssh, settings), (through) => TransferHost.remote("bbcp", through, script, ssh))
  )

const none = async () => {
  const l = await leftovers()
  return l.folders.length === 0 && l.masters.length === 0
}

/** An ssh that can open one connection only: every later call that needs a new one fails. */
const oneConnectionSsh = async (name: string) => {
  const marker = path.join(dir, `${name}.first`)
  const program = path.join(dir, `${name}.ssh`)
  await fs.writeFile(
    program,
    `#!/bin/sh\nif [ -e ${marker} ]; then exec ssh -o ProxyCommand=false "$@"; fi\ntouch ${marker}\nexec ssh "$@"\n`,
    { mode: 0o755 }
  )
  return program
}

const running = (pid: number) => fs.readFile(`/proc/${pid}/stat`, "utf8").then((s) => !/\) [ZX] /.test(s), () => false)

describe("a route's shared ssh connection", () => {
  it.live("consecutive transfers ride the first one's connection; closeAll leaves no master and no folder", () =>
    Effect.gen(function* () {
      const ssh = yield* Effect.promise(() => oneConnectionSsh("consecutive"))
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* transfer({ idleSeconds: 30 }, "echo ok", ssh)).trim(), "ok")
      const held = SshMux.masters()
      assert.strictEqual(held.length, 1)
      assert.strictEqual(held[0]!.holders, 0)
      assert.isDefined(held[0]!.pid)
      yield* SshMux.closeAll
      assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
    }), 60_000)

  it.live("a killed master is replaced for the next transfer, which succeeds", () =>
    Effect.gen(function* () {
      yield* transfer({ idleSeconds: 30 })
      const first = SshMux.masters()[0]!
      process.kill(first.pid!, "SIGKILL")
      assert.isTrue(yield* Effect.promise(() => until(async () => !(await running(first.pid!)), 5_000)))
      assert.strictEqual((yield* transfer({ idleSeconds: 30 })).trim(), "ok")
      const now = SshMux.masters()
      assert.strictEqual(now.length, 1)
      assert.notStrictEqual(now[0]!.pid, first.pid)
      assert.notStrictEqual(now[0]!.socket, first.socket)
      // the dead one's folder went with it
      assert.strictEqual((yield* Effect.promise(leftovers)).folders.length, 1)
    }), 60_000)

  it.live("a transfer that failed on the connection retires its master", () =>
    Effect.gen(function* () {
      const failed = yield* Effect.scoped(
        Effect.flatMap(
          SshMux.shared(endpointAt(sshd), "ssh", { idleSeconds: 30 }),
          () => Effect.fail(TransferError.make("bbcp", "Connection", "Broken pipe"))
        )
      ).pipe(Effect.flip)
      assert.strictEqual(failed.reason, "Connection")
      assert.deepStrictEqual(SshMux.masters(), [])
      assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
    }), 60_000)

  it.live("a master closes after its idle time; with none it closes with its transfer", () =>
    Effect.gen(function* () {
      yield* transfer({ idleSeconds: 0 })
      assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
      yield* transfer({ idleSeconds: 1 })
      assert.strictEqual(SshMux.masters().length, 1)
      assert.isTrue(yield* Effect.promise(() => until(none, 10_000)), "closed after 1 s idle")
      assert.deepStrictEqual(SshMux.masters(), [])
    }), 60_000)

  it.live("one master carries at most maxSessions transfers at once; more open another", () =>
    Effect.gen(function* () {
      let most = 0
      const watch = setInterval(() => {
        for (const m of SshMux.masters()) most = Math.max(most, m.holders)
      }, 20)
      const outs = yield* Effect.all(
        Array.from({ length: 5 }, () => transfer({ idleSeconds: 30, maxSessions: 2 }, "sleep 1; echo ok", "ssh", narrow)),
        { concurrency: "unbounded" }
      ).pipe(Effect.ensuring(Effect.sync(() => clearInterval(watch))))
      assert.deepStrictEqual(outs.map((o) => o.trim()), ["ok", "ok", "ok", "ok", "ok"])
      assert.strictEqual(SshMux.masters().length, 3)
      assert.isAtMost(most, 2)
      // the same five on one connection are more than this sshd allows (ssh would fall back to a
      // connection of its own for each refused session; this ssh cannot): the limit above is real
      const ssh = yield* Effect.promise(() => oneConnectionSsh("crowded"))
      const crowded = yield* Effect.all(
        Array.from(
          { length: 5 },
          () => transfer({ idleSeconds: 30, maxSessions: 10 }, "sleep 1; echo ok", ssh, narrow).pipe(Effect.either)
        ),
        { concurrency: "unbounded" }
      )
      assert.isAbove(crowded.filter((o) => o._tag === "Left").length, 0)
    }), 60_000)

  it.live("a worker stopped by SIGTERM closes its masters as it exits", () =>
    Effect.gen(function* () {
      const src = path.resolve(import.meta.dirname, "../src/SshMux.ts")
      const root = path.resolve(import.meta.dirname, "../../..")
      // a worker as `ccat worker` runs: runMain ends it on SIGTERM; evaluated from the repository, so its imports resolve
      const code = [
        `import { NodeRuntime } from "@effect/platform-node"`,
        `import * as Effect from "effect/Effect"`,
        `import * as SshMux from ${JSON.stringify(src)}`,
        `NodeRuntime.runMain(Effect.scoped(Effect.gen(function* () {`,
        `  yield* SshMux.shared(${JSON.stringify(endpointAt(sshd))}, "ssh", { idleSeconds: 600 })`,
        `  console.log("pid=" + SshMux.masters()[0].pid + " socket=" + SshMux.masters()[0].socket)`,
        `  return yield* Effect.never`,
        `})))`
      ].join("\n")
      const child = spawn(path.join(root, "node_modules/.bin/tsx"), ["--eval", code], { cwd: root, stdio: ["ignore", "pipe", "inherit"] })
      const line = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          let out = ""
          child.stdout.on("data", (c) => {
            out += String(c)
            if (out.includes("\n")) resolve(out.trim())
          })
          child.once("exit", () => resolve(out.trim()))
        })
      )
      const m = /^pid=(\d+) socket=(\S+)$/.exec(line)
      assert.isNotNull(m, line)
      const [pid, socket] = [Number(m![1]), m![2]!]
      assert.isTrue(yield* Effect.promise(() => running(pid)))
      child.kill("SIGTERM")
      yield* Effect.promise(() => new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r))))
      assert.isTrue(yield* Effect.promise(() => until(async () => !(await running(pid)), 5_000)), "the master exited")
      assert.isFalse(yield* Effect.promise(() => fs.stat(path.dirname(socket)).then(() => true, () => false)), "its folder is gone")
    }), 60_000)

  it("a route sets its connection's idle time and sessions; out-of-range values are refused, named", () => {
    const decode = Schema.decodeUnknownEither(BbcpRouteOptions.Options, { onExcessProperty: "error" })
    const ok = decode({ host: "far", sshIdleSeconds: 0, sshMaxSessions: 4 })
    assert.isTrue(Either.isRight(ok))
    if (Either.isRight(ok)) assert.deepStrictEqual(BbcpRouteOptions.toOptions(ok.right).connection, { idleSeconds: 0, maxSessions: 4 })
    const none = decode({ host: "far" })
    if (Either.isRight(none)) assert.deepStrictEqual(BbcpRouteOptions.toOptions(none.right).connection, {})
    for (const bad of [{ sshIdleSeconds: -1 }, { sshIdleSeconds: 3601 }, { sshMaxSessions: 0 }, { sshIdleSeconds: 1.5 }]) {
      const refused = decode({ host: "far", ...bad })
      assert.isTrue(Either.isLeft(refused), JSON.stringify(bad))
      if (Either.isLeft(refused)) assert.include(String(refused.left), Object.keys(bad)[0]!)
    }
  })
})
