/**
 * The emulated Chile ↔ Cologne link does what the transfer tests and benchmarks rely on: a
 * round trip of about 220 ms, the loss it is told, partitions that stop traffic and heal, a real
 * rsync over ssh across it, and a teardown that leaves nothing behind. Runs as root (CI does);
 * without root or namespaces it fails, it never skips.
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { RsyncTransfer } from "@ccat/transfer-rsync"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as WanWorld from "./WanWorld.js"

/** Polls `check` every `everyMs` until it holds or `boundMs` has passed; fails with `what` then. */
const waitFor = <A, E>(what: string, check: Effect.Effect<A | undefined, E>, boundMs: number, everyMs = 200) =>
  Effect.gen(function* () {
    const deadline = Date.now() + boundMs
    for (let round = 0; round < 10_000; round++) {
      const value = yield* check
      if (value !== undefined) return value
      if (Date.now() > deadline) break
      yield* Effect.sleep(everyMs)
    }
    return yield* Effect.dieMessage(`${what}: not within ${boundMs} ms`)
  })

/** Packet counters of a chain's rules, in order. */
const counters = (world: WanWorld.WanWorld, host: WanWorld.HostName, chain: string) =>
  world.exec(host, [world.iptables, "-w", "5", "-nvxL", chain]).pipe(
    Effect.map((r) =>
      r.stdout
        .split("\n")
        .slice(2)
        .filter((l) => l.trim() !== "")
        .map((l) => Number(l.trim().split(/\s+/)[0]))
    )
  )

const sha256 = (file: string) => fs.readFile(file).then((b) => createHash("sha256").update(b).digest("hex"))

const hostText = (cmd: string, args: ReadonlyArray<string>) => {
  try {
    return execFileSync(cmd, [...args], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
  } catch {
    return ""
  }
}

describe("WAN kit", () => {
  layer(WanWorld.layer(), { timeout: 60_000, excludeTestServices: true })("Chile ↔ Cologne, 110 ms each way", (it) => {
    it.effect("a TCP round trip takes about 220 ms", () =>
      Effect.gen(function* () {
        const world = yield* WanWorld.Wan
        const samples: Array<number> = []
        for (let i = 0; i < 3; i++) {
          const ms = yield* world.connectMs(world.sshd!.port, 5_000)
          assert.isDefined(ms, "a connect to cologne's sshd from chile failed")
          samples.push(ms!)
        }
        const best = Math.min(...samples)
        console.log(`[wan] TCP connect chile → cologne: ${samples.map((s) => s.toFixed(1)).join(", ")} ms`)
        assert.isAtLeast(best, 200)
        assert.isAtMost(best, 400)
      }))

    it.effect("random loss drops about the share it is set to", () =>
      Effect.gen(function* () {
        const world = yield* WanWorld.Wan
        const n = 500
        const p = 0.2
        yield* world.setLoss(p, "to-cologne")
        yield* world.exec("cologne", [world.iptables, "-w", "5", "-A", "INPUT", "-p", "udp", "--dport", "9"])
        const before = (yield* counters(world, "router", "WAN_LOSS"))[0] ?? 0
        yield* world.exec("chile", ["bash", "-c", `for i in $(seq ${n}); do echo -n x > /dev/udp/${world.cologne.address}/9; done`])
        // every probe has either been dropped at the router or arrived (110 ms later) in cologne
        const [dropped, arrived] = yield* waitFor(
          "all probes accounted for",
          Effect.gen(function* () {
            const d = ((yield* counters(world, "router", "WAN_LOSS"))[0] ?? 0) - before
            const a = (yield* counters(world, "cologne", "INPUT"))[0] ?? 0
            return d + a >= n ? ([d, a] as const) : undefined
          }),
          15_000
        )
        // the drop rule also sees the last packets of the earlier tests' closing connections
        assert.isAtMost(dropped + arrived, n + 5)
        const lost = n - arrived
        console.log(`[wan] loss ${p}: ${lost} of ${n} probes lost (${dropped} packets dropped at the router), ${arrived} arrived`)
        assert.isAtLeast(lost / n, p - 0.1)
        assert.isAtMost(lost / n, p + 0.1)
        yield* world.setLoss(0)
        assert.deepStrictEqual(yield* counters(world, "router", "WAN_LOSS"), [])
      }))

    it.effect("bad settings are refused and change nothing", () =>
      Effect.gen(function* () {
        const world = yield* WanWorld.Wan
        yield* world.setLoss(0.05)
        for (const bad of [-0.1, 1, Number.NaN]) {
          const e = yield* world.setLoss(bad).pipe(Effect.flip)
          assert.strictEqual(e.reason, "BadInput")
        }
        const e = yield* world.setDelay(-5).pipe(Effect.flip)
        assert.strictEqual(e.reason, "BadInput")
        const rules = (yield* world.exec("router", [world.iptables, "-w", "5", "-S", "WAN_LOSS"])).stdout
        assert.strictEqual(rules.match(/probability 0\.0499/g)?.length, 2, rules)
        yield* world.setLoss(0)
      }))

    it.effect("a partition stops traffic and healing restores it", () =>
      Effect.gen(function* () {
        const world = yield* WanWorld.Wan
        const port = world.sshd!.port
        yield* world.partition()
        yield* world.partition() // idempotent
        assert.isUndefined(yield* world.connectMs(port, 1_500), "a connect crossed a partition")
        yield* world.heal
        const ms = yield* waitFor("a connect after healing", world.connectMs(port, 2_000), 15_000, 0)
        assert.isAtMost(ms, 2_000)
      }))

    it.effect("the rsync adapter over ssh copies a file byte-identical from chile to cologne", () =>
      Effect.gen(function* () {
        const world = yield* WanWorld.Wan
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-wan-rsync-"))),
          (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
        )
        const source = path.join(dir, "obs.bin")
        const destination = path.join(dir, "cologne", "obs.bin")
        yield* Effect.promise(() => fs.writeFile(source, randomBytes(6 * 1024 * 1024)))
        const started = Date.now()
        const result = yield* RsyncTransfer.make({ ssh: world.chileSsh, ioTimeoutSeconds: 30 }).transfer(
          { source: TransferEndpoint.local(source), destination: world.cologneEndpoint(destination), kind: "file" },
          { retry: TransferAdapter.noRetry }
        )
        console.log(`[wan] rsync adapter over ssh, 6 MiB chile → cologne: ${((Date.now() - started) / 1000).toFixed(1)} s`)
        assert.strictEqual(result.bytes, 6 * 1024 * 1024)
        assert.isTrue(result.verified)
        assert.strictEqual(yield* Effect.promise(() => sha256(destination)), yield* Effect.promise(() => sha256(source)))
      }).pipe(Effect.scoped))
  })

  it.live("teardown leaves no namespace, link, rule, state or process behind", () =>
    Effect.gen(function* () {
      const { id, pids } = yield* Effect.scoped(
        Effect.gen(function* () {
          const world = yield* WanWorld.make()
          const pids = yield* world.pids
          assert.isAtLeast(pids.length, 2, "the delay helper and sshd run in the link's namespaces")
          assert.isTrue(existsSync(path.join(WanWorld.runRoot, world.id)))
          return { id: world.id, pids }
        })
      )
      const namespaces = hostText("ip", ["netns", "list"])
      assert.notInclude(namespaces, id)
      for (const pid of pids) assert.isFalse(existsSync(`/proc/${pid}`), `process ${pid} outlived the link`)
      assert.isFalse(existsSync(path.join(WanWorld.runRoot, id)))
      const links = hostText("ip", ["-o", "link", "show"])
      assert.notMatch(links, /\b(chile0|cologne0|wan0)\b/)
      for (const save of ["iptables-nft-save", "iptables-legacy-save"]) {
        const rules = hostText(save, [])
        assert.notInclude(rules, "WAN_")
        assert.notInclude(rules, "NFQUEUE")
      }
    }), 60_000)
})
