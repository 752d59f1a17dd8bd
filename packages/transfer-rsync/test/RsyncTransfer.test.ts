import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { TransferAdapterSuite } from "@ccat/core/testing"
import { RsyncCommand, RsyncTransfer } from "@ccat/transfer-rsync"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../../../scripts/sshd.js"

const slowBandwidth = 8 * 1024 * 1024

const sshEndpoint = (sshd: Sshd.Sshd, p: string, extra: Partial<TransferEndpoint.Ssh> = {}) =>
  TransferEndpoint.ssh({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    sshOptions: sshd.sshOptions,
    path: p,
    ...extra
  })

// The three conformance runs have their own sshd and scratch folders, and much of their time is
// spent waiting on ssh round trips and bandwidth-capped copies, so they and their cases run side by
// side (vitest's maxConcurrency caps how many at once).
describe.concurrent("rsync conformance: push, pull and local", () => {
  // The main case: pushing to another site over real ssh (a throwaway sshd on loopback).
  TransferAdapterSuite.run("rsync over ssh", async () => {
    const sshd = await Sshd.start()
    return {
      layer: RsyncTransfer.layer(),
      source: (p) => TransferEndpoint.local(p),
      destination: (p) => sshEndpoint(sshd, p),
      slowBandwidth,
      // 1 GiB by default keeps the whole run under 4 minutes on a busy 2-core machine;
      // CCAT_TRANSFER_LARGE_BYTES=2147483648 (or more) makes it the multi-GB case (2 GiB: about 30 s)
      largeBytes: TransferAdapterSuite.largeBytesFromEnv(1024 * 1024 * 1024),
      teardown: sshd.stop
    }
  })

  // Pulling from the remote site, and both ends local, with a small large-file case.
  TransferAdapterSuite.run("rsync pull over ssh", async () => {
    const sshd = await Sshd.start()
    return {
      layer: RsyncTransfer.layer(),
      source: (p) => sshEndpoint(sshd, p),
      destination: (p) => TransferEndpoint.local(p),
      slowBandwidth,
      largeBytes: Math.min(64 * 1024 * 1024, TransferAdapterSuite.largeBytesFromEnv()),
      teardown: sshd.stop
    }
  })

  TransferAdapterSuite.run("rsync local", async () => ({
    layer: RsyncTransfer.layer(),
    source: (p) => TransferEndpoint.local(p),
    destination: (p) => TransferEndpoint.local(p),
    slowBandwidth,
    largeBytes: Math.min(64 * 1024 * 1024, TransferAdapterSuite.largeBytesFromEnv())
  }))
})

const reasonOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? (exit.cause.error as { reason: string; retryable: boolean }) : undefined

describe("rsync adapter: failures classified", () => {
  let sshd: Sshd.Sshd
  let dir: string
  beforeAll(async () => {
    sshd = await Sshd.start()
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-rsync-"))
    await fs.writeFile(path.join(dir, "src.bin"), Buffer.alloc(4 * 1024 * 1024, 7))
  })
  afterAll(async () => {
    await sshd?.stop()
    await fs.rm(dir, { recursive: true, force: true })
  })
  const push = (extra: Partial<TransferEndpoint.Ssh> = {}): TransferAdapter.Request => ({
    source: TransferEndpoint.local(path.join(dir, "src.bin")),
    destination: sshEndpoint(sshd, path.join(dir, "out", "dst.bin"), extra),
    kind: "file"
  })
  const once = { retry: TransferAdapter.noRetry }

  it.live("an unauthorised key is AuthenticationFailed, not retryable", () =>
    Effect.gen(function* () {
      const e = reasonOf(
        yield* RsyncTransfer.make().transfer(push({ identityFile: path.join(sshd.dir, "host_ed25519") }), once).pipe(Effect.exit)
      )
      assert.strictEqual(e?.reason, "AuthenticationFailed")
      assert.strictEqual(e?.retryable, false)
    }))

  it.live("a refused connection is Connection, retryable", () =>
    Effect.gen(function* () {
      const e = reasonOf(yield* RsyncTransfer.make().transfer(push({ port: 1 }), once).pipe(Effect.exit))
      assert.strictEqual(e?.reason, "Connection")
      assert.strictEqual(e?.retryable, true)
    }))

  it.live("rsync missing on the remote host is ToolMissing; missing locally too, with a clear message", () =>
    Effect.gen(function* () {
      // size() goes over ssh first and works; the copy then runs the missing remote rsync
      const remote = reasonOf(yield* RsyncTransfer.make({ remoteRsync: "/nonexistent/bin/rsync" }).transfer(push(), once).pipe(Effect.exit))
      assert.strictEqual(remote?.reason, "ToolMissing")
      const exit = yield* RsyncTransfer.make({ rsync: "/nonexistent/bin/rsync" }).transfer(push(), once).pipe(Effect.exit)
      const local = reasonOf(exit)
      assert.strictEqual(local?.reason, "ToolMissing")
      assert.include(String((local as unknown as Error).message), "install rsync")
    }))

  it.live("a transfer slower than its size-scaled deadline fails as Timeout, retryable, and stops rsync", () =>
    Effect.gen(function* () {
      const adapter = RsyncTransfer.make({ timeout: { base: "1 second", minBytesPerSecond: 1e12 } })
      const e = reasonOf(yield* adapter.transfer({ ...push(), bandwidthLimit: 1024 * 1024 }, once).pipe(Effect.exit))
      assert.strictEqual(e?.reason, "Timeout")
      assert.strictEqual(e?.retryable, true)
    }))

  it("parses progress2 lines and stats", () => {
    assert.deepStrictEqual(RsyncCommand.parseProgress("      9,043,968  14%    8.01MB/s    0:00:06  "), {
      bytes: 9043968,
      percent: 14,
      rate: 8.01 * 1024 * 1024
    })
    assert.deepStrictEqual(RsyncCommand.parseProgress("         32,768   0%    0.00kB/s    0:00:00  "), {
      bytes: 32768,
      percent: 0,
      rate: 0
    })
    assert.strictEqual(RsyncCommand.parseProgress("Number of files: 1 (reg: 1)"), undefined)
    const stats = RsyncCommand.parseStats(
      "Total file size: 64,000,000 bytes\nLiteral data: 51,386,904 bytes\nMatched data: 12,613,096 bytes\n"
    )
    assert.deepStrictEqual(stats, { literal: 51386904, matched: 12613096, totalSize: 64000000 })
  })

  it("classifies exit codes with what rsync printed", () => {
    const c = RsyncCommand.classify
    assert.strictEqual(c(23, null, `rsync: [sender] link_stat "/nonexist" failed: No such file or directory (2)`).reason, "SourceNotFound")
    assert.strictEqual(
      c(11, null, `rsync: [receiver] write failed on "/x/b": No space left on device (28)\nrsync: [sender] write error: Broken pipe (32)`)
        .reason,
      "DestinationFull"
    )
    assert.strictEqual(
      c(23, null, `rsync: [receiver] mkstemp "/x/.a.e82hAE" failed: Read-only file system (30)`).reason,
      "PermissionDenied"
    )
    assert.strictEqual(c(24, null, 'file has vanished: "/x/a"').reason, "SourceVanished")
    assert.strictEqual(c(30, null, "rsync error: timeout in data send/receive (code 30)").reason, "Timeout")
    assert.strictEqual(c(12, null, "rsync: connection unexpectedly closed (0 bytes received so far) [sender]").reason, "Connection")
    assert.strictEqual(c(1, null, "rsync: --nope: unknown option").reason, "InvalidRequest")
    assert.strictEqual(c(2, null, "protocol version mismatch").retryable, false)
  })

  it("builds the command: contents of a directory, partial dir, bandwidth cap, ssh with port and key", () => {
    const argv = RsyncTransfer.command(
      {
        source: TransferEndpoint.local("/data/src/tree"),
        destination: TransferEndpoint.ssh({
          host: "cologne.example",
          user: "ccat",
          port: 2222,
          identityFile: "/k/id",
          path: "/buffer/tree"
        }),
        kind: "directory",
        bandwidthLimit: 10 * 1024 * 1024
      },
      { ioTimeoutSeconds: 60 }
    )
    assert.strictEqual(argv[0], "rsync")
    assert.include(argv, "--partial-dir=.ccat-partial")
    assert.include(argv, "--bwlimit=10240")
    assert.include(argv, "--timeout=60")
    assert.deepStrictEqual(argv.slice(-2), ["/data/src/tree/", "cologne.example:/buffer/tree"])
    const e = argv[argv.indexOf("-e") + 1]!
    assert.include(e, "-p 2222")
    assert.include(e, "-i /k/id")
    assert.include(e, "-l ccat")
    assert.include(e, "BatchMode=yes")
  })
})
