/**
 * Transfers over an emulated Chile → Cologne link (`wan/`, about 220 ms round trip, 1 Gbit/s):
 * the same bundle sent with our rsync adapter over ssh, an rsync daemon (`rsync://`, reachable
 * from chile only), and our bbcp adapter with 1, 4, 8 and 16 streams when a bbcp binary is at
 * hand (bbcp by itself beside it on request), with iperf3 at the same stream counts as the
 * link's measured ceiling in the same run; for each loss rate and congestion control. Run as
 * root, by hand (not in CI):
 *
 *   npx tsx bench/wan-transfer.ts
 *   CCAT_WAN_BYTES=268435456 CCAT_WAN_LOSSES=0 CCAT_WAN_CCS=bbr npx tsx bench/wan-transfer.ts
 *
 * Environment (defaults in brackets): CCAT_WAN_BYTES [1 GiB], CCAT_WAN_FILES [8],
 * CCAT_WAN_LOSSES [0,0.00001,0.001], CCAT_WAN_CCS [cubic,bbr], CCAT_WAN_STREAMS [1,4,8,16],
 * CCAT_WAN_VARIANTS [iperf3,rsync-ssh,rsync-daemon,bbcp; also bbcp-x2: CCAT_WAN_ROUTE_BUNDLES [4]
 * bundles through one adapter, two at a time, as a route with `maxConcurrentTransfers: 2` (the
 * default) sends them, the next starting as one ends, so one's start overlaps the other's data;
 * rated by all their bytes over the time until the last is in; bbcp-bare: the bbcp binary by
 * itself], CCAT_WAN_CAP_SECONDS [300] (a run is stopped there and counted by the bytes that
 * arrived), CCAT_WAN_IPERF_SECONDS [10], CCAT_WAN_DELAY_MS [110], CCAT_WAN_RATE_MBIT [1000],
 * CCAT_BBCP [/work/bbcp-build/bin/amd64_linux/bbcp if present], CCAT_WAN_BBCP_WINDOW [the
 * adapter's window, unset: its default], CCAT_WAN_BBCP_BASELINE [unset; a path to another build
 * of @ccat/transfer-bbcp, e.g. an older checkout's dist/index.js: its adapter runs right before
 * ours at each stream count, as bbcp-base-n, for a before/after under the same load],
 * CCAT_WAN_REPEAT [1; N: each bbcp adapter sends the bundle N times in a row at each stream
 * count, the baseline's and ours alternating, as a route's consecutive transfers do; the summary
 * then gives each adapter's first transfer and the mean of its later ones, which ride the route's
 * kept ssh connection].
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { NodeRuntime } from "@effect/platform-node"
import { RsyncTransfer } from "@ccat/transfer-rsync"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import * as Effect from "effect/Effect"
import { accessSync, constants } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as WanWorld from "../packages/server/test/wan/WanWorld.js"
import * as Tools from "./wan-tools.js"

const fail = (message: string): never => {
  console.error(`wan-transfer: ${message}`)
  process.exit(2)
}
const num = (name: string, fallback: number, min: number, max: number): number => {
  const raw = process.env[name]
  const v = raw === undefined || raw === "" ? fallback : Number(raw)
  return Number.isFinite(v) && v >= min && v <= max ? v : fail(`${name} must be a number from ${min} to ${max}, got ${raw}`)
}
const list = (name: string, fallback: string, check: (s: string) => boolean): Array<string> => {
  const items = (process.env[name] ?? fallback).split(",").map((s) => s.trim()).filter((s) => s !== "")
  const bad = items.find((s) => !check(s))
  return bad === undefined && items.length > 0 ? items : fail(`${name}: '${bad ?? ""}' is not allowed (got ${process.env[name]})`)
}

const bytes = num("CCAT_WAN_BYTES", 1024 ** 3, 1024 * 1024, 64 * 1024 ** 3)
const files = num("CCAT_WAN_FILES", 8, 1, 100_000)
const losses = list("CCAT_WAN_LOSSES", "0,0.00001,0.001", (s) => Number(s) >= 0 && Number(s) < 1).map(Number)
const ccs = list("CCAT_WAN_CCS", "cubic,bbr", (s) => ["bbr", "cubic", "reno", "default"].includes(s)) as Array<WanWorld.CongestionControl>
const streams = list("CCAT_WAN_STREAMS", "1,4,8,16", (s) => /^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 64).map(Number)
const variants = new Set(
  list(
    "CCAT_WAN_VARIANTS",
    "iperf3,rsync-ssh,rsync-daemon,bbcp",
    (s) => ["iperf3", "rsync-ssh", "rsync-daemon", "bbcp", "bbcp-x2", "bbcp-bare"].includes(s)
  )
)
const capSeconds = num("CCAT_WAN_CAP_SECONDS", 300, 5, 86_400)
const repeat = num("CCAT_WAN_REPEAT", 1, 1, 20)
const routeBundles = num("CCAT_WAN_ROUTE_BUNDLES", 4, 2, 64)
const iperfSeconds = num("CCAT_WAN_IPERF_SECONDS", 10, 5, 600)
const delayMs = num("CCAT_WAN_DELAY_MS", 110, 0, 10_000)
const rateMbit = num("CCAT_WAN_RATE_MBIT", 1000, 1, 100_000)
const bbcpWindow = process.env["CCAT_WAN_BBCP_WINDOW"]
if (bbcpWindow !== undefined && !/^\d+[kmg]?$/i.test(bbcpWindow)) fail(`CCAT_WAN_BBCP_WINDOW must look like 8m, got ${bbcpWindow}`)

const baselinePath = process.env["CCAT_WAN_BBCP_BASELINE"]
const baseline: typeof BbcpTransfer | undefined = baselinePath === undefined || baselinePath === ""
  ? undefined
  : ((await import(path.resolve(baselinePath)).catch((e: unknown) => fail(`CCAT_WAN_BBCP_BASELINE=${baselinePath}: ${String(e)}`))) as {
    BbcpTransfer?: typeof BbcpTransfer
  }).BbcpTransfer ??
    fail(`CCAT_WAN_BBCP_BASELINE=${baselinePath} exports no BbcpTransfer`)

const bbcpBinary = (() => {
  const given = process.env["CCAT_BBCP"]
  const candidate = given ?? "/work/bbcp-build/bin/amd64_linux/bbcp"
  try {
    accessSync(candidate, constants.X_OK)
    return candidate
  } catch {
    if (given !== undefined) fail(`CCAT_BBCP=${given} is not an executable file`)
    return undefined
  }
})()

const fmt = (v: number | string | undefined) => (typeof v === "number" ? v.toFixed(1) : v ?? "-")
const runText = (r: Tools.Run) =>
  `${Tools.mbps(r).toFixed(1)} MB/s (${(r.bytes / 1e6).toFixed(0)} MB in ${r.seconds.toFixed(1)} s${
    r.firstByteSeconds === undefined ? "" : `, first byte after ${r.firstByteSeconds.toFixed(1)} s`
  }${r.steadyMBps === undefined ? "" : `, ${r.steadyMBps.toFixed(1)} MB/s past the ramp-up`}${r.ok ? "" : `; ${r.detail}`})`

interface Row {
  readonly loss: number
  readonly cc: string
  readonly rttMs: number | undefined
  readonly iperf: Record<number, number | string>
  readonly results: Record<string, Tools.Run>
}

const bench = async (world: WanWorld.WanWorld, work: string, signal: AbortSignal): Promise<void> => {
  const servers: Array<{ stop: () => void }> = []
  try {
    const source = path.join(work, "bundle")
    const destRoot = path.join(work, "cologne")
    await fs.mkdir(destRoot, { recursive: true })
    console.log(`writing the bundle: ${files} files, ${(bytes / 1024 ** 2).toFixed(0)} MiB in ${source}`)
    await Tools.writeBundle(source, bytes, files)
    const helperPid = Number((await fs.readFile(path.join(WanWorld.runRoot, world.id, "ready"), "utf8")).trim())
    const nsDefault = (await Effect.runPromise(world.exec("chile", ["sysctl", "-n", "net.ipv4.tcp_congestion_control"]))).stdout.trim()
    console.log(
      `link ${world.id}: ${delayMs} ms each way, bottleneck ${rateMbit} Mbit/s; the namespaces' default congestion control is ${nsDefault}`
    )
    if (variants.has("iperf3")) {
      servers.push(Tools.serve(world, "cologne", ["iperf3", "-s"]))
      await Tools.waitListening(world, 5201)
    }
    if (variants.has("rsync-daemon")) {
      servers.push(await Tools.rsyncDaemon(world, work, destRoot))
      const fromRouter = await Effect.runPromise(
        world.exec("router", ["rsync", `rsync://${world.cologne.address}/bench/`], { allowFailure: true, timeoutMs: 30_000 })
      )
      console.log(
        `rsync daemon on ${world.cologne.address}:873, chile only: a listing from the router ${
          fromRouter.exitCode === 0 ? "WORKED (check hosts allow)" : "is refused"
        }`
      )
    }
    if (variants.has("bbcp") && bbcpBinary === undefined) {
      console.log("bbcp: no binary (set CCAT_BBCP=/path/to/bbcp); bbcp runs are skipped")
    }
    const rows: Array<Row> = []
    for (const loss of losses) {
      for (const cc of ccs) {
        if (signal.aborted) return
        await Effect.runPromise(world.setLoss(loss).pipe(Effect.zipRight(world.setCongestionControl(cc))))
        const rtts: Array<number> = []
        for (let i = 0; i < 3; i++) {
          const ms = await Effect.runPromise(world.connectMs(world.sshd!.port, 5_000))
          if (ms !== undefined) rtts.push(ms)
        }
        const rttMs = rtts.length === 0 ? undefined : Math.min(...rtts)
        console.log(`\n== loss ${loss * 100}%, ${cc}: TCP connect ${fmt(rttMs)} ms`)
        const row: Row = { loss, cc, rttMs, iperf: {}, results: {} }
        rows.push(row)
        const timed = async (name: string, run: () => Promise<Tools.Run>) => {
          if (signal.aborted) return
          const cpu0 = await Tools.cpuSeconds(helperPid)
          console.log(`  ${name} ...`)
          const r = await run()
          const cpu = (await Tools.cpuSeconds(helperPid)) - cpu0
          row.results[name] = r
          console.log(
            `  ${name}: ${runText(r)}; delay helper ${((cpu / r.seconds) * 100).toFixed(0)}% of a core; load ${os.loadavg()[0]!.toFixed(1)}`
          )
          await fs.rm(path.join(destRoot, "run"), { recursive: true, force: true })
          await fs.rm(path.join(destRoot, ".ccat-partial"), { recursive: true, force: true })
        }
        if (variants.has("iperf3")) {
          for (const n of streams) {
            if (signal.aborted) return
            const cpu0 = await Tools.cpuSeconds(helperPid)
            const started = Date.now()
            row.iperf[n] = await Tools.iperf3(world, n, iperfSeconds)
            const cpu = ((await Tools.cpuSeconds(helperPid)) - cpu0) / ((Date.now() - started) / 1000)
            console.log(
              `  iperf3 -P ${n}: ${fmt(row.iperf[n])}${typeof row.iperf[n] === "number" ? " MB/s" : ""}; delay helper ${
                (cpu * 100).toFixed(0)
              }% of a core`
            )
          }
        }
        const dst = path.join(destRoot, "run")
        if (variants.has("rsync-ssh")) {
          await timed("rsync-ssh", async () => {
            const started = Date.now()
            const adapter = RsyncTransfer.make({
              ssh: world.chileSsh,
              verify: false,
              retry: TransferAdapter.noRetry,
              ioTimeoutSeconds: 120
            })
            const ticker = setInterval(
              () =>
                void Tools.dirBytes(dst).then((b) =>
                  console.log(`    rsync-ssh: ${(b / 1e6).toFixed(0)} MB after ${((Date.now() - started) / 1000).toFixed(0)} s`)
                ),
              10_000
            )
            const outcome = await Effect.runPromise(
              adapter
                .transfer({ source: TransferEndpoint.local(source), destination: world.cologneEndpoint(dst), kind: "directory" })
                .pipe(Effect.timeoutOption(`${capSeconds} seconds`), Effect.either)
            ).finally(() => clearInterval(ticker))
            const seconds = (Date.now() - started) / 1000
            const moved = await Tools.dirBytes(dst)
            if (outcome._tag === "Left") return { bytes: moved, seconds, capped: false, ok: false, detail: outcome.left.message }
            return outcome.right._tag === "None"
              ? { bytes: moved, seconds, capped: true, ok: false, detail: `stopped at the ${capSeconds} s cap` }
              : { bytes: moved, seconds, capped: false, ok: true }
          })
        }
        if (variants.has("rsync-daemon")) {
          await timed(
            "rsync-daemon",
            () =>
              Tools.capped(
                world,
                "chile",
                ["rsync", "-rlt", `${source}/`, `rsync://${world.cologne.address}/bench/run/`],
                dst,
                capSeconds,
                "rsync-daemon"
              )
          )
        }
        if ((variants.has("bbcp") || variants.has("bbcp-x2") || variants.has("bbcp-bare")) && bbcpBinary !== undefined) {
          const bbcpInChile = await Tools.inChile(world, work, bbcpBinary)
          const viaAdapter = (adapter: typeof BbcpTransfer, n: number, pair = false) => async () => {
            const made = adapter.make({
              bbcp: bbcpInChile,
              remoteBbcp: bbcpBinary,
              ssh: world.chileSsh,
              tuning: { streams: n, ...(bbcpWindow === undefined ? {} : { window: bbcpWindow }) },
              retry: TransferAdapter.noRetry,
              verify: false
            })
            const one = (to: string) =>
              made.transfer({ source: TransferEndpoint.local(source), destination: world.cologneEndpoint(to), kind: "directory" })
            const all = pair
              ? Effect.forEach(Array.from({ length: routeBundles }, (_, i) => path.join(dst, `b${i}`)), one, {
                concurrency: 2,
                discard: true
              })
              : Effect.asVoid(one(dst))
            return Tools.cappedEffect(all, destRoot, dst, capSeconds, `bbcp adapter -s ${n}${pair ? ` x2, ${routeBundles} bundles` : ""}`)
          }
          for (const n of streams) {
            for (let k = 1; k <= repeat; k++) {
              const nth = repeat === 1 ? "" : `#${k}`
              if (baseline !== undefined && variants.has("bbcp")) await timed(`bbcp-base-${n}${nth}`, viaAdapter(baseline, n))
              if (variants.has("bbcp")) await timed(`bbcp-${n}${nth}`, viaAdapter(BbcpTransfer, n))
              if (variants.has("bbcp-x2")) await timed(`bbcp-${n}x2${nth}`, viaAdapter(BbcpTransfer, n, true))
            }
            if (variants.has("bbcp-bare")) {
              await fs.mkdir(dst, { recursive: true })
              const argv = [
                bbcpBinary,
                "-r",
                "-s",
                String(n),
                ...(bbcpWindow === undefined ? [] : ["-w", bbcpWindow]),
                "-T",
                Tools.bbcpTarget(world, bbcpBinary),
                source,
                `${world.cologne.address}:${dst}/`
              ]
              await timed(`bbcp-bare-${n}`, () => Tools.capped(world, "chile", argv, dst, capSeconds, `bbcp -s ${n}`))
            }
          }
        }
      }
    }
    summary(rows)
  } finally {
    for (const s of servers) s.stop()
  }
}

/** Runs taken together: their bytes over their seconds, first byte and steady rate averaged. */
const together = (runs: ReadonlyArray<Tools.Run>): Tools.Run => {
  const firsts = runs.flatMap((r) => (r.firstByteSeconds === undefined ? [] : [r.firstByteSeconds]))
  const steadies = runs.flatMap((r) => (r.steadyMBps === undefined ? [] : [r.steadyMBps]))
  return {
    ...(steadies.length === 0 ? {} : { steadyMBps: steadies.reduce((a, b) => a + b, 0) / steadies.length }),
    bytes: runs.reduce((n, r) => n + r.bytes, 0),
    seconds: runs.reduce((n, r) => n + r.seconds, 0),
    capped: runs.some((r) => r.capped),
    ok: runs.every((r) => r.ok),
    ...(firsts.length === 0 ? {} : { firstByteSeconds: firsts.reduce((a, b) => a + b, 0) / firsts.length })
  }
}

/**
 * With repeats, each adapter's runs `name#k` become `name first` (#1) and `name` (the later ones
 * together): a route's later transfers are what a kept connection speeds up.
 */
const byRepeat = (results: Record<string, Tools.Run>): Record<string, Tools.Run> => {
  if (repeat === 1) return results
  const out: Record<string, Tools.Run> = {}
  const later: Record<string, Array<Tools.Run>> = {}
  for (const [name, run] of Object.entries(results)) {
    const m = /^(.*)#(\d+)$/.exec(name)
    if (m === null) out[name] = run
    else if (m[2] === "1") out[`${m[1]} first`] = run
    else (later[m[1]!] ??= []).push(run)
  }
  for (const [name, runs] of Object.entries(later)) out[name] = together(runs)
  return out
}

const summary = (raw: ReadonlyArray<Row>) => {
  const rows = raw.map((r) => ({ ...r, results: byRepeat(r.results) }))
  console.log(
    `\n## Summary (${(bytes / 1024 ** 2).toFixed(0)} MiB in ${files} files, MB/s = 10^6 bytes/s; * = stopped at the ${capSeconds} s cap${
      repeat === 1 ? "" : `; ${repeat} transfers in a row: "first" is the first, the plain name the ${repeat - 1} after it together`
    })\n`
  )
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.results)))]
  const iperfNames = variants.has("iperf3") ? streams.map((n) => `iperf3 -P ${n}`) : []
  const baseNames = baseline === undefined ? [] : ["best bbcp-base / iperf3"]
  const pairNames = variants.has("bbcp-x2") ? ["best bbcp x2 / best iperf3"] : []
  const steadyNames = variants.has("bbcp") ? ["best bbcp past its ramp-up / iperf3 (same streams)"] : []
  console.log(
    `| ${
      [
        "loss",
        "cc",
        "RTT ms",
        ...iperfNames,
        ...names,
        "best bbcp / rsync-ssh",
        "best bbcp / iperf3 (same streams)",
        ...baseNames,
        ...pairNames,
        ...steadyNames
      ].join(" | ")
    } |`
  )
  console.log(`|${"---|".repeat(3 + iperfNames.length + names.length + 2 + baseNames.length + pairNames.length + steadyNames.length)}`)
  for (const r of rows) {
    const cell = (n: string) => {
      const x = r.results[n]
      return x === undefined ? "-" : `${Tools.mbps(x).toFixed(1)}${x.capped ? "*" : x.ok ? "" : "!"}`
    }
    const bestOf = (prefix: string, suffix = "") =>
      streams
        .map((n) => [n, r.results[`${prefix}-${n}${suffix}`]] as const)
        .filter((x): x is readonly [number, Tools.Run] => x[1] !== undefined)
        .reduce<readonly [number, Tools.Run] | undefined>(
          (b, x) => (b === undefined || Tools.mbps(x[1]) > Tools.mbps(b[1]) ? x : b),
          undefined
        )
    const vsIperfOf = (best: readonly [number, Tools.Run] | undefined) => {
      const ip = best === undefined ? undefined : r.iperf[best[0]]
      return best !== undefined && typeof ip === "number" ? `${(Tools.mbps(best[1]) / ip).toFixed(2)} (s=${best[0]})` : "-"
    }
    const best = bestOf("bbcp")
    const rs = r.results["rsync-ssh"]
    const vsRsync = best !== undefined && rs !== undefined ? (Tools.mbps(best[1]) / Tools.mbps(rs)).toFixed(2) : "-"
    const vsIperf = vsIperfOf(best)
    const baseCells = baseline === undefined ? [] : [vsIperfOf(bestOf("bbcp-base"))]
    // two transfers at once use twice the streams: against the link's best measured ceiling
    const ceiling = Math.max(0, ...Object.values(r.iperf).filter((x): x is number => typeof x === "number"))
    const pair = bestOf("bbcp", "x2")
    const pairCells = pairNames.length === 0 ? [] : [
      pair === undefined || ceiling === 0 ? "-" : `${(Tools.mbps(pair[1]) / ceiling).toFixed(2)} (s=${pair[0]})`
    ]
    // on iperf3's footing: its figure leaves out its first seconds, this one the transfer's ramp-up
    const steadyBest = streams
      .flatMap((n) => {
        const x = r.results[`bbcp-${n}`]?.steadyMBps
        const ip = r.iperf[n]
        return x === undefined || typeof ip !== "number" ? [] : [{ n, ratio: x / ip }]
      })
      .reduce<{ n: number; ratio: number } | undefined>((b, x) => (b === undefined || x.ratio > b.ratio ? x : b), undefined)
    const steadyCells = steadyNames.length === 0
      ? []
      : [steadyBest === undefined ? "-" : `${steadyBest.ratio.toFixed(2)} (s=${steadyBest.n})`]
    const iperfCells = variants.has("iperf3") ? streams.map((n) => (typeof r.iperf[n] === "string" ? "failed" : fmt(r.iperf[n]))) : []
    console.log(
      `| ${
        [
          `${r.loss * 100}%`,
          r.cc,
          fmt(r.rttMs),
          ...iperfCells,
          ...names.map(cell),
          vsRsync,
          vsIperf,
          ...baseCells,
          ...pairCells,
          ...steadyCells
        ].join(
          " | "
        )
      } |`
    )
  }
  const timed = names.filter((n) => rows.some((r) => r.results[n]?.firstByteSeconds !== undefined))
  if (timed.length === 0) return
  console.log(`\nSeconds to the first byte (mean where runs are taken together):\n`)
  console.log(`| ${["loss", "cc", ...timed].join(" | ")} |\n|${"---|".repeat(2 + timed.length)}`)
  for (const r of rows) {
    console.log(`| ${[`${r.loss * 100}%`, r.cc, ...timed.map((n) => fmt(r.results[n]?.firstByteSeconds))].join(" | ")} |`)
  }
}

if (process.getuid?.() !== 0) fail("needs root (network namespaces, iptables, tc)")
NodeRuntime.runMain(
  Effect.scoped(
    Effect.gen(function* () {
      // the bundle's folder goes when the run ends or is interrupted (Ctrl-C), after the link
      const work = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(process.env["CCAT_WAN_DIR"] ?? os.tmpdir(), "ccat-wan-bench-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const world = yield* WanWorld.make({ delayMs, rateMbit })
      yield* Effect.promise((signal) => bench(world, work, signal))
    })
  )
)
