/**
 * Does `ccat route bench` pick well on a long link? Over an emulated Chile → Cologne link
 * (`wan/`, about 220 ms round trip, 1 Gbit/s) it runs `ccat route bench` on a bbcp route (in the
 * chile namespace, as the sending site would), then sends the same bundle through the bbcp
 * adapter (`bench/wan-send.ts`, in chile too) under every setting the bench measured and prints
 * the rate of the bench's choice against the best of them, both once data flows (target: at
 * least 90%). Run as root, by hand (not in CI):
 *
 *   npx tsx bench/wan-route-bench.ts
 *   CCAT_WAN_LOSS=0.001 CCAT_WAN_CC=cubic npx tsx bench/wan-route-bench.ts
 *
 * Environment (defaults in brackets): CCAT_WAN_BYTES [1 GiB, the bundle], CCAT_WAN_PROBE
 * [256 MB, the bench's --probe-size], CCAT_WAN_LOSS [0], CCAT_WAN_CC [bbr], CCAT_WAN_DELAY_MS
 * [110], CCAT_WAN_RATE_MBIT [1000], CCAT_WAN_CAP_SECONDS [180 per bundle run], CCAT_WAN_ROUNDS
 * [2: the bench's --rounds, and the bundle runs per setting, the fastest counting], CCAT_BBCP
 * [/work/bbcp-build/bin/amd64_linux/bbcp].
 */
import { NodeRuntime } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { accessSync, constants } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as WanWorld from "../packages/server/test/wan/WanWorld.js"
import * as Tools from "./wan-tools.js"

const fail = (message: string): never => {
  console.error(`wan-route-bench: ${message}`)
  process.exit(2)
}
const num = (name: string, fallback: number, min: number, max: number): number => {
  const raw = process.env[name]
  const v = raw === undefined || raw === "" ? fallback : Number(raw)
  return Number.isFinite(v) && v >= min && v <= max ? v : fail(`${name} must be a number from ${min} to ${max}, got ${raw}`)
}

const bytes = num("CCAT_WAN_BYTES", 1024 ** 3, 1024 * 1024, 64 * 1024 ** 3)
const probe = process.env["CCAT_WAN_PROBE"] ?? "256 MB"
const loss = num("CCAT_WAN_LOSS", 0, 0, 0.5)
const cc = (process.env["CCAT_WAN_CC"] ?? "bbr") as WanWorld.CongestionControl
if (!["bbr", "cubic", "reno", "default"].includes(cc)) fail(`CCAT_WAN_CC must be bbr, cubic, reno or default, got ${cc}`)
const delayMs = num("CCAT_WAN_DELAY_MS", 110, 0, 10_000)
const rateMbit = num("CCAT_WAN_RATE_MBIT", 1000, 1, 100_000)
const capSeconds = num("CCAT_WAN_CAP_SECONDS", 180, 5, 86_400)
const rounds = num("CCAT_WAN_ROUNDS", 2, 1, 5)
const bbcp = process.env["CCAT_BBCP"] ?? "/work/bbcp-build/bin/amd64_linux/bbcp"
try {
  accessSync(bbcp, constants.X_OK)
} catch {
  fail(`no bbcp at ${bbcp}: build SLAC's bbcp and set CCAT_BBCP`)
}

/** What `ccat route bench --json` prints, as far as this bench reads it. */
interface Report {
  readonly settings: ReadonlyArray<
    { readonly label: string; readonly options: { streams?: number; window?: number }; readonly rate: number; readonly error?: string }
  >
  readonly recommended: string
  readonly best: string
}

const configFor = (work: string, world: WanWorld.WanWorld) => {
  const s = world.sshd!
  const options = {
    host: s.host,
    port: s.port,
    user: s.user,
    identityFile: s.identityFile,
    sshOptions: [...s.sshOptions],
    bbcp,
    remoteBbcp: bbcp
  }
  const loc = (name: string, type: string, extra = "") =>
    `      - { name: ${name}, type: ${type}, technology: disk, driver: { root: ${path.join(work, name)} }${extra} }`
  return [
    "sites:",
    "  - name: chile",
    "    shortName: cl",
    "    locations:",
    loc("chile-source", "SOURCE"),
    loc("chile-buffer", "BUFFER"),
    "  - name: cologne",
    "    shortName: col",
    "    role: main",
    "    locations:",
    loc("cologne-buffer", "BUFFER"),
    loc("cologne-archive", "LONG_TERM_ARCHIVE", ", retention: { keepForever: true }"),
    "routes:",
    `  - { from: chile, to: cologne, adapter: bbcp, options: ${JSON.stringify(options)} }`,
    ""
  ].join("\n")
}

/** `ccat route bench` inside chile, its progress shown as it goes; the JSON report. */
const routeBench = (world: WanWorld.WanWorld, config: string) =>
  new Promise<Report>((resolve, reject) => {
    const cli = path.join(process.cwd(), "packages/server/src/cli.ts")
    const argv = [
      "netns",
      "exec",
      world.chile.netns,
      process.execPath,
      "--import",
      "tsx",
      cli,
      "route",
      "bench",
      "chile->cologne",
      "--config",
      config,
      "--probe-size",
      probe,
      "--rounds",
      String(rounds),
      "--json"
    ]
    const child = spawn("ip", argv, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (c) => (out += String(c)))
    child.once("close", (code) => {
      try {
        if (code !== 0) throw new Error(`ccat route bench ended with ${code}`)
        resolve(JSON.parse(out) as Report)
      } catch (e) {
        reject(e)
      }
    })
  })

const bench = async (world: WanWorld.WanWorld, work: string) => {
  for (const d of ["chile-source", "chile-buffer", "cologne-buffer", "cologne-archive"]) {
    await fs.mkdir(path.join(work, d), { recursive: true })
  }
  const config = path.join(work, "ccat.yaml")
  await fs.writeFile(config, configFor(work, world))
  await Effect.runPromise(world.setLoss(loss).pipe(Effect.zipRight(world.setCongestionControl(cc))))
  console.log(`link ${world.id}: ${delayMs} ms each way, ${rateMbit} Mbit/s, loss ${loss * 100}%, ${cc}; probes of ${probe}`)
  const started = Date.now()
  const report = await routeBench(world, config)
  console.log(
    `ccat route bench took ${
      ((Date.now() - started) / 1000).toFixed(0)
    } s and recommends ${report.recommended} (best probe: ${report.best})`
  )
  const source = path.join(work, "chile-buffer", "bundle.bin")
  await Tools.writeBundle(path.dirname(source), bytes, 1)
  await fs.rename(path.join(work, "chile-buffer", "obs-000.bin"), source)
  const runs: Array<{ label: string; probe: number; rate: number; seconds: number; error?: string }> = []
  const s0 = world.sshd!
  for (const s of report.settings) {
    if (s.error !== undefined) continue
    let best: { rate: number; seconds: number; error?: string } | undefined
    for (let i = 0; i < rounds; i++) {
      const r = await send(world, {
        source,
        destination: path.join(work, "cologne-buffer", `bundle-${runs.length}-${i}.bin`),
        host: s0.host,
        port: s0.port,
        user: s0.user,
        identityFile: s0.identityFile,
        sshOptions: s0.sshOptions,
        bbcp,
        ...(s.options.streams === undefined ? {} : { streams: s.options.streams }),
        ...(s.options.window === undefined ? {} : { window: s.options.window })
      })
      const rate = r.steady ?? (r.seconds === undefined ? 0 : bytes / r.seconds)
      console.log(
        `  bundle with ${s.label}: ${r.error ?? `${(rate / 1e6).toFixed(1)} MB/s once flowing, ${r.seconds!.toFixed(1)} s in all`}`
      )
      if (best === undefined || rate > best.rate) {
        best = { rate, seconds: r.seconds ?? 0, ...(r.error === undefined ? {} : { error: r.error }) }
      }
      await fs.rm(path.join(work, "cologne-buffer", `bundle-${runs.length}-${i}.bin`), { force: true })
    }
    runs.push({ label: s.label, probe: s.rate / 1e6, ...best! })
  }
  const best = runs.reduce((b, r) => (r.rate > b.rate ? r : b))
  const chosen = runs.find((r) => r.label === report.recommended)!
  console.log(
    `\n## ccat route bench over the link (${
      (bytes / 1024 ** 2).toFixed(0)
    } MiB bundle through the bbcp adapter, fastest of ${rounds} per setting, loss ${
      loss * 100
    }%, ${cc}; MB/s = 10^6 bytes/s once flowing)\n`
  )
  console.log("| setting | probe MB/s | bundle MB/s | bundle seconds in all |")
  console.log("|---|---|---|---|")
  for (const r of runs) {
    console.log(
      `| ${r.label}${r.label === report.recommended ? " (chosen)" : ""} | ${r.probe.toFixed(1)} | ${(r.rate / 1e6).toFixed(1)} | ${
        r.seconds.toFixed(1)
      } |`
    )
  }
  const ratio = chosen.rate / best.rate
  console.log(
    `\nchosen ${chosen.label}: ${(chosen.rate / 1e6).toFixed(1)} MB/s; best on the bundle ${best.label}: ${
      (best.rate / 1e6).toFixed(1)
    } MB/s; ratio ${ratio.toFixed(2)} (target at least 0.90: ${ratio >= 0.9 ? "met" : "MISSED"})`
  )
}

/** One bundle through the bbcp adapter, run inside chile (`bench/wan-send.ts`). */
const send = (world: WanWorld.WanWorld, args: Record<string, unknown>) =>
  new Promise<{ seconds?: number; steady?: number; error?: string }>((resolve) => {
    const script = path.join(process.cwd(), "bench/wan-send.ts")
    const child = spawn("ip", ["netns", "exec", world.chile.netns, process.execPath, "--import", "tsx", script, JSON.stringify(args)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let err = ""
    child.stdout.on("data", (c) => (out += String(c)))
    child.stderr.on("data", (c) => (err = (err + String(c)).slice(-2000)))
    const cap = setTimeout(() => child.kill("SIGINT"), capSeconds * 1000)
    child.once("close", () => {
      clearTimeout(cap)
      try {
        const r = JSON.parse(out.trim().split("\n").pop() ?? "") as { seconds?: number; steady?: number | null; error?: string }
        resolve({
          ...(r.seconds === undefined ? {} : { seconds: r.seconds }),
          ...(r.steady == null ? {} : { steady: r.steady }),
          ...(r.error === undefined ? {} : { error: r.error })
        })
      } catch {
        resolve({ error: `no result: ${err.trim().split("\n").slice(-2).join(" / ")}` })
      }
    })
  })

if (process.getuid?.() !== 0) fail("needs root (network namespaces, iptables, tc)")
NodeRuntime.runMain(
  Effect.scoped(
    Effect.gen(function* () {
      const work = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(process.env["CCAT_WAN_DIR"] ?? os.tmpdir(), "ccat-wan-route-bench-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      yield* Effect.promise(() => fs.chmod(work, 0o755))
      const world = yield* WanWorld.make({ delayMs, rateMbit })
      yield* Effect.promise(() => bench(world, work))
    })
  )
)
