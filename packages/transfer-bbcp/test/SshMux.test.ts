/**
 * The shared ssh connection of bbcp's transfers: a route's transfers ride one connection, a
 * verified push makes two calls (bbcp's agent with the staging folders, the publish with the
 * checksums), a killed master is replaced, and whatever way the connection's owner ends (closed,
 * interrupted with no idle time, its process killed) no master process or socket stays behind.
 * The transfer cases need a real bbcp on PATH; the killed-owner case needs only ssh and sshd.
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { TransferAdapterSuite } from "@ccat/core/testing"
import { BbcpTransfer, SshMux } from "@ccat/transfer-bbcp"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../../../scripts/sshd.js"
import { leftovers, until } from "./SshLeftovers.js"

const bbcpOnPath = await Effect.runPromise(BbcpTransfer.findBinary("bbcp").pipe(Effect.option))

let sshd: Sshd.Sshd
let dir: string
beforeAll(async () => {
  sshd = await Sshd.start()
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-mux-"))
})
afterEach(() => Effect.runPromise(SshMux.closeAll))
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true })
  await sshd.stop()
})

const endpoint = (p: string) =>
  TransferEndpoint.ssh({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    sshOptions: sshd.sshOptions,
    path: p
  })

/**
 * An ssh that opens one connection at most: every call after the first gets a proxy that
 * fails, so it works only through the first call's master. Each call's words go to `log`.
 */
const oneConnectionSsh = async (name: string) => {
  const marker = path.join(dir, `${name}.first`)
  const program = path.join(dir, `${name}.ssh`)
  const log = path.join(dir, `${name}.log`)
  await fs.writeFile(
    program,
    `#!/bin/sh\necho "$*" >> ${log}\nif [ -e ${marker} ]; then exec ssh -o ProxyCommand=false "$@"; fi\ntouch ${marker}\nexec ssh "$@"\n`,
    { mode: 0o755 }
  )
  const calls = async () =>
    (await fs.readFile(log, "utf8").catch(() => "")).split("\n").filter((l) => l !== "" && !/ -O (check|exit) /.test(l))
  return { program, calls }
}

describe.runIf(bbcpOnPath._tag === "Some")("a bbcp transfer over one ssh connection (real bbcp)", () => {
  const bbcp = bbcpOnPath._tag === "Some" ? bbcpOnPath.value : "bbcp"

  it.live(
    "consecutive transfers of a route ride one connection, which closeAll ends with its folder",
    () =>
      Effect.gen(function* () {
        const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "one.bin"), 2 * 1024 * 1024))
        const request = (name: string) => ({
          source: TransferEndpoint.local(path.join(dir, "one.bin")),
          destination: endpoint(path.join(dir, "out", name)),
          kind: "file" as const
        })
        const one = yield* Effect.promise(() => oneConnectionSsh("shared"))
        const shared = BbcpTransfer.make({ bbcp, remoteBbcp: bbcp, ssh: one.program, retry: TransferAdapter.noRetry })
        for (const name of ["one.bin", "two.bin"]) {
          const result = yield* shared.transfer(request(name))
          assert.strictEqual(result.checksum, sum)
          assert.isTrue(result.verified)
        }
        // per transfer: bbcp's agent (which makes the staging folders first), and the publish that reads the checksums
        const calls = (yield* Effect.promise(one.calls)).filter((c) => !/ -N /.test(c))
        assert.strictEqual(calls.length, 4, calls.join("\n"))
        assert.strictEqual(SshMux.masters().length, 1)
        yield* SshMux.closeAll
        assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
        // the same ssh without sharing cannot make its second connection: the check above is real
        const separate = BbcpTransfer.make({
          bbcp,
          remoteBbcp: bbcp,
          ssh: (yield* Effect.promise(() => oneConnectionSsh("separate"))).program,
          retry: TransferAdapter.noRetry,
          shareConnection: false
        })
        const failed = yield* separate.transfer(request("three.bin")).pipe(Effect.flip)
        assert.strictEqual(failed.reason, "Connection")
      }),
    90_000
  )

  it.live("a master killed between two transfers: the second still succeeds", () =>
    Effect.gen(function* () {
      const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "k.bin"), 1024 * 1024))
      const adapter = BbcpTransfer.make({ bbcp, remoteBbcp: bbcp, retry: TransferAdapter.noRetry })
      const request = (name: string) => ({
        source: TransferEndpoint.local(path.join(dir, "k.bin")),
        destination: endpoint(path.join(dir, "out", name)),
        kind: "file" as const
      })
      yield* adapter.transfer(request("k1.bin"))
      const pid = SshMux.masters()[0]!.pid!
      process.kill(pid, "SIGKILL")
      assert.isTrue(yield* Effect.promise(() => until(() => fs.stat(`/proc/${pid}/cmdline`).then(() => false, () => true), 5_000)))
      const second = yield* adapter.transfer(request("k2.bin"))
      assert.strictEqual(second.checksum, sum)
      assert.isTrue(second.verified)
      yield* SshMux.closeAll
      assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
    }), 90_000)

  it.live("with no idle time, an interrupted transfer leaves no master process and no socket", () =>
    Effect.gen(function* () {
      yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "slow.bin"), 24 * 1024 * 1024))
      // with no idle time a route's connection closes with its transfer, however that ends
      const adapter = BbcpTransfer.make({ bbcp, remoteBbcp: bbcp, retry: TransferAdapter.noRetry, connection: { idleSeconds: 0 } })
      const fiber = yield* adapter
        .transfer({
          source: TransferEndpoint.local(path.join(dir, "slow.bin")),
          destination: endpoint(path.join(dir, "out", "slow.bin")),
          kind: "file",
          bandwidthLimit: 2 * 1024 * 1024
        })
        .pipe(Effect.fork)
      const staged = BbcpTransfer.stagingOf(path.join(dir, "out", "slow.bin")).temp
      const flowing = yield* Effect.promise(() => until(() => fs.stat(staged).then((s) => s.size > 0, () => false), 20_000))
      assert.isTrue(flowing, "data reached the staging file")
      assert.strictEqual((yield* Effect.promise(leftovers)).folders.length, 1, "the transfer runs through a master socket")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* Effect.promise(leftovers), { folders: [], masters: [] })
    }), 60_000)
})

describe("a master whose process was killed", () => {
  it.live(
    "exits once idle, and the next sweep removes its folder; a folder whose master answers is left alone",
    () =>
      Effect.gen(function* () {
        // a process that is gone, standing for a worker killed with SIGKILL
        const dead = yield* Effect.promise(
          () => new Promise<number>((resolve) => {
            const c = spawn("true")
            c.once("exit", () => resolve(c.pid!))
          })
        )
        const folder = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), `${SshMux.folderPrefix}${dead}-`)))
        const socket = path.join(folder, "c")
        const through = { ...endpoint("/"), sshOptions: [...sshd.sshOptions, ...SshMux.controlOptions(socket, 2)] }
        const ssh = spawn("ssh", [
          "-p",
          String(through.port),
          "-i",
          sshd.identityFile,
          ...through.sshOptions.flatMap((o) => ["-o", o]),
          "-o",
          "BatchMode=yes",
          "-l",
          sshd.user,
          sshd.host,
          "true"
        ], { stdio: "ignore" })
        const code = yield* Effect.promise(() => new Promise<number | null>((resolve) => ssh.once("close", resolve)))
        assert.strictEqual(code, 0)
        const masterUp = yield* Effect.promise(() => fs.stat(socket).then(() => true, () => false))
        assert.isTrue(masterUp, "the call left a master behind, as a killed worker's would")
        const early = yield* Effect.promise(() => SshMux.sweep())
        assert.notInclude(early, folder, "a folder whose master answers is kept")
        const gone = yield* Effect.promise(() => until(() => fs.stat(socket).then(() => false, () => true), 15_000))
        assert.isTrue(gone, "the idle master exited and removed its socket")
        const removed = yield* Effect.promise(() => SshMux.sweep())
        assert.include(removed, folder)
        assert.isFalse(yield* Effect.promise(() => fs.stat(folder).then(() => true, () => false)))
      }),
    30_000
  )
})
