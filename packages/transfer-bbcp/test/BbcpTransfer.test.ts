import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { TransferProcess } from "@ccat/core/node"
import { TransferAdapterSuite } from "@ccat/core/testing"
import { BbcpCommand, BbcpTransfer } from "@ccat/transfer-bbcp"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../../../scripts/sshd.js"
import { until } from "./SshLeftovers.js"

const bbcpOnPath = await Effect.runPromise(BbcpTransfer.findBinary("bbcp").pipe(Effect.option))

if (bbcpOnPath._tag === "Some") {
  const binary = bbcpOnPath.value
  console.log(`[bbcp] conformance suite: RUN against ${binary}`)
  TransferAdapterSuite.run("bbcp over ssh", async () => {
    const sshd = await Sshd.start()
    return {
      layer: BbcpTransfer.layer({ bbcp: binary, remoteBbcp: binary }),
      source: (p) => TransferEndpoint.local(p),
      destination: (p) =>
        TransferEndpoint.ssh({
          host: sshd.host,
          port: sshd.port,
          user: sshd.user,
          identityFile: sshd.identityFile,
          sshOptions: sshd.sshOptions,
          path: p
        }),
      slowBandwidth: 8 * 1024 * 1024,
      teardown: sshd.stop
    }
  })
  TransferAdapterSuite.run("bbcp local", async () => ({
    layer: BbcpTransfer.layer({ bbcp: binary }),
    source: (p) => TransferEndpoint.local(p),
    destination: (p) => TransferEndpoint.local(p),
    slowBandwidth: 8 * 1024 * 1024,
    largeBytes: Math.min(64 * 1024 * 1024, TransferAdapterSuite.largeBytesFromEnv())
  }))
  describe("bbcp's staging folder with the real bbcp", () => {
    const adapter = BbcpTransfer.make({ bbcp: binary, retry: TransferAdapter.noRetry })
    it.live("a file and a tree copied at once into one folder leave it holding them and nothing else", () =>
      Effect.gen(function* () {
        const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-stage-")))
        yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "src", "f.bin"), 6 * 1024 * 1024))
        yield* Effect.promise(() => TransferAdapterSuite.writeTree(path.join(dir, "src", "tree"), 40))
        const out = path.join(dir, "out")
        yield* Effect.all(
          [
            adapter.transfer({
              source: TransferEndpoint.local(path.join(dir, "src", "f.bin")),
              destination: TransferEndpoint.local(path.join(out, "f.bin")),
              kind: "file"
            }),
            adapter.transfer({
              source: TransferEndpoint.local(path.join(dir, "src", "tree")),
              destination: TransferEndpoint.local(path.join(out, "tree")),
              kind: "directory"
            })
          ],
          { concurrency: 2 }
        )
        assert.deepStrictEqual((yield* Effect.promise(() => fs.readdir(out))).sort(), ["f.bin", "tree"])
        yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      }), 60_000)

    it.live(
      "an interrupted copy keeps its part and checkpoints under .ccat-partial; the next attempt resumes from them and removes them",
      () =>
        Effect.gen(function* () {
          const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-resume-")))
          const bytes = 32 * 1024 * 1024
          const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(dir, "src.bin"), bytes))
          const request: TransferAdapter.Request = {
            source: TransferEndpoint.local(path.join(dir, "src.bin")),
            destination: TransferEndpoint.local(path.join(dir, "out", "dst.bin")),
            kind: "file"
          }
          const staging = BbcpTransfer.stagingOf(request.destination.path)
          yield* adapter.stream({ ...request, bandwidthLimit: 8 * 1024 * 1024 }).pipe(
            Stream.takeUntil((e) => e._tag === "Progress" && e.bytes >= bytes / 4),
            Stream.runDrain
          )
          assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(dir, "out"))), [BbcpTransfer.partialDir])
          assert.isAbove((yield* Effect.promise(() => fs.stat(staging.temp))).size, 0)
          assert.isNotEmpty(yield* Effect.promise(() => fs.readdir(staging.checkpoints)))
          const result = yield* adapter.transfer(request)
          assert.strictEqual(result.checksum, sum)
          assert.isAbove(result.resumedBytes, 0)
          assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(dir, "out"))), ["dst.bin"])
          yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
        }),
      60_000
    )
  })
} else {
  console.log("[bbcp] conformance suite: NOT RUN (no bbcp binary on PATH)")
  describe("TransferAdapter conformance: bbcp", () => {
    it("NOT RUN: no bbcp binary on PATH (put one there to run the conformance suite against it)", () => {
      assert.strictEqual(bbcpOnPath._tag, "None")
    })
  })
}

describe("bbcp adapter without a bbcp binary", () => {
  it.live("a configured path that does not exist fails ToolMissing, not retryable, saying what to do", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-")))
      yield* Effect.promise(() => fs.writeFile(path.join(dir, "a.bin"), "data"))
      const exit = yield* BbcpTransfer.make({ bbcp: "/nonexistent/bin/bbcp" })
        .transfer({
          source: TransferEndpoint.local(path.join(dir, "a.bin")),
          destination: TransferEndpoint.local(path.join(dir, "b.bin")),
          kind: "file"
        })
        .pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        assert.strictEqual(exit.cause.error.reason, "ToolMissing")
        assert.strictEqual(exit.cause.error.retryable, false)
        assert.include(exit.cause.error.message, "not packaged for Debian")
        assert.include(exit.cause.error.message, "/nonexistent/bin/bbcp")
      }
      // nothing was created at the destination
      assert.deepStrictEqual((yield* Effect.promise(() => fs.readdir(dir))).sort(), ["a.bin"])
      yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    }))

  it("plans a resumable push: copy and -a checkpoints in the transfer's own staging folder, -k on every attempt, -P 2, the ssh program for the target", () => {
    const request: TransferAdapter.Request = {
      source: TransferEndpoint.local("/buffer/chile/pkg-0001.tar"),
      destination: TransferEndpoint.ssh({
        host: "cologne.example",
        user: "ccat",
        port: 2222,
        identityFile: "/keys/id",
        path: "/buffer/cologne/pkg-0001.tar"
      }),
      kind: "file",
      bandwidthLimit: 50_000_000
    }
    const p = BbcpTransfer.plan(request, { tuning: { streams: 8, window: "8M" }, remoteBbcp: "/opt/bbcp/bin/bbcp" })
    const argv = BbcpCommand.args(p.typed, p.sources, p.target)
    assert.deepStrictEqual(argv.slice(0, 13), [
      "-a",
      "/buffer/cologne/.ccat-partial/pkg-0001.tar.bbcp/ckp",
      "-k",
      "-s",
      "8",
      "-w",
      "8M",
      "-x",
      "50000000",
      "-P",
      "2",
      "-v",
      "-T"
    ])
    // the ssh call that starts bbcp's agent makes the staging folders first
    const stage = "/buffer/cologne/.ccat-partial/pkg-0001.tar.bbcp /buffer/cologne/.ccat-partial/pkg-0001.tar.bbcp/ckp"
    assert.strictEqual(
      argv[13],
      `ssh -x -a -p 2222 -i /keys/id -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4 %I -l %U %H mkdir -p -- ${stage} 2>/dev/null || mkdir -p -- ${stage} && exec /opt/bbcp/bin/bbcp`
    )
    assert.isTrue(p.stagedByAgent)
    assert.deepStrictEqual(argv.slice(-2), [
      "/buffer/chile/pkg-0001.tar",
      "ccat@cologne.example:/buffer/cologne/.ccat-partial/pkg-0001.tar.bbcp/part"
    ])
  })

  it("a destination the far shell would need quoted for gets its staging folders in a call of their own", () => {
    const p = BbcpTransfer.plan({
      source: TransferEndpoint.local("/buffer/chile/pkg.tar"),
      destination: TransferEndpoint.ssh({ host: "cologne.example", path: "/buffer/cologne/pkg;date&.tar" }),
      kind: "file"
    })
    assert.isFalse(p.stagedByAgent)
    assert.notInclude(p.typed.targetProgram ?? "", "mkdir")
  })

  it("plans a tree pull with -r into a staging directory, and a non-resumable copy with -f", () => {
    const p = BbcpTransfer.plan(
      {
        source: TransferEndpoint.ssh({ host: "chile.example", path: "/data/obs/0042" }),
        destination: TransferEndpoint.local("/archive/obs/0042"),
        kind: "directory",
        resume: false
      },
      {}
    )
    const argv = BbcpCommand.args(p.typed, p.sources, p.target)
    assert.includeMembers(argv, ["-r", "-f", "-S"])
    assert.notInclude(argv, "-a")
    assert.deepStrictEqual(argv.slice(-2), ["chile.example:/data/obs/0042", "/archive/obs/.ccat-partial/0042.bbcp/part/"])
  })

  it.live("stopping signals the whole process group: a helper that outlives its parent is stopped too (fixture 23)", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-group-")))
      const started = path.join(dir, "helper-started")
      const mark = path.join(dir, "helper-finished")
      const present = (file: string) => fs.access(file).then(() => true, () => false)
      // like bbcp: the parent forks an agent that would finish the work after the parent died
      const fiber = yield* TransferProcess.run({ command: "sh", args: ["-c", `(touch ${started}; sleep 1; touch ${mark}) & sleep 30`] })
        .pipe(Effect.fork)
      assert.isTrue(yield* Effect.promise(() => until(() => present(started), 30_000)), "the helper started")
      yield* Fiber.interrupt(fiber)
      // the helper's shell names the folder on its command line: once none does, nothing can write the mark
      const helperGone = async () => {
        for (const pid of await fs.readdir("/proc")) {
          if (/^\d+$/.test(pid) && (await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes(dir)) return false
        }
        return true
      }
      assert.isTrue(yield* Effect.promise(() => until(helperGone, 10_000)), "the helper was killed with its parent")
      assert.isFalse(yield* Effect.promise(() => present(mark)), "the helper was killed with its parent")
      yield* Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    }))
})
