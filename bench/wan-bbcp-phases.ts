/**
 * Where the time of one bbcp transfer through our adapter goes, over the emulated Chile → Cologne
 * link (`wan/`, about 220 ms round trip): every ssh call and the bbcp run are timed by wrappers,
 * the bytes at the destination are sampled every 50 ms, and a timeline is printed per run
 * (first byte, half, all, bbcp's exit, the end). Settings are interleaved round by round, so a
 * change of the machine's load hits all of them alike. Run as root, by hand:
 *
 *   npx tsx bench/wan-bbcp-phases.ts
 *   CCAT_PHASES_SETTINGS="shared,separate,bare" CCAT_WAN_BYTES=268435456 npx tsx bench/wan-bbcp-phases.ts
 *
 * Environment (defaults in brackets): CCAT_WAN_BYTES [256 MiB], CCAT_WAN_FILES [1],
 * CCAT_WAN_STREAMS [4], CCAT_WAN_CC [bbr], CCAT_PHASES_ROUNDS [2], CCAT_PHASES_VERIFY [0]
 * (1: the adapter verifies the copy too), CCAT_PHASES_SETTINGS [shared,separate]: `shared` is
 * the adapter with one ssh connection per transfer, `separate` one connection per ssh call,
 * `bare` bbcp by itself with the same streams, each optionally with bbcp sizes (`shared:w=8m`,
 * `bare:B=4m`); CCAT_WAN_BBCP_WINDOW [unset] bbcp's `-w` for all; CCAT_BBCP as in
 * wan-transfer.ts. Each round starts with iperf3 at the same stream count.
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
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
  console.error(`wan-bbcp-phases: ${message}`)
  process.exit(2)
}
const num = (name: string, fallback: number, min: number, max: number): number => {
  const raw = process.env[name]
  const v = raw === undefined || raw === "" ? fallback : Number(raw)
  return Number.isInteger(v) && v >= min && v <= max ? v : fail(`${name} must be a whole number from ${min} to ${max}, got ${raw}`)
}
const bytes = num("CCAT_WAN_BYTES", 256 * 1024 ** 2, 1024 * 1024, 16 * 1024 ** 3)
const files = num("CCAT_WAN_FILES", 1, 1, 1000)
const streams = num("CCAT_WAN_STREAMS", 4, 1, 64)
const rounds = num("CCAT_PHASES_ROUNDS", 2, 1, 20)
const verify = num("CCAT_PHASES_VERIFY", 0, 0, 1) === 1
const cc = process.env["CCAT_WAN_CC"] ?? "bbr"
if (!["bbr", "cubic", "reno", "default"].includes(cc)) fail(`CCAT_WAN_CC must be bbr, cubic, reno or default, got ${cc}`)
const window = process.env["CCAT_WAN_BBCP_WINDOW"]
if (window !== undefined && !/^\d+[kmg]?$/i.test(window)) fail(`CCAT_WAN_BBCP_WINDOW must look like 8m, got ${window}`)
const settings = (process.env["CCAT_PHASES_SETTINGS"] ?? "shared,separate").split(",").map((s) => s.trim())
/** A setting is `shared`, `separate` or `bare`, optionally with bbcp sizes: `shared:w=8m`, `bare:B=4m`. */
const parseSetting = (s: string) => {
  const [kind = "", ...extras] = s.split(":")
  if (!["shared", "separate", "bare"].includes(kind)) fail(`CCAT_PHASES_SETTINGS: unknown setting ${s}`)
  const sizes: { w?: string; B?: string } = {}
  for (const e of extras) {
    const m = /^([wB])=(\d+[kmg]?)$/i.exec(e)
    if (m === null) fail(`CCAT_PHASES_SETTINGS: ${s}: write w=8m or B=4m after a colon`)
    sizes[m![1] as "w" | "B"] = m![2]!
  }
  return { kind, w: sizes.w ?? window, B: sizes.B }
}
for (const s of settings) parseSetting(s)
const bbcp = process.env["CCAT_BBCP"] ?? "/work/bbcp-build/bin/amd64_linux/bbcp"
try {
  accessSync(bbcp, constants.X_OK)
} catch {
  fail(`no bbcp at ${bbcp} (set CCAT_BBCP)`)
}

/**
 * A program that logs its start and end (with its last argument, the remote command) and runs
 * `real` in chile; with `lines`, every line the program prints on stderr is logged too.
 */
const wrapper = (log: string, label: string, real: string, netns: string, lines = false) =>
  [
    "#!/bin/bash",
    `printf '%s start ${label} %s\\n' "$(date +%s%3N)" "\${@: -1}" | cut -c1-160 >> ${log}`,
    lines
      ? `ip netns exec ${netns} ${real} "$@" 2> >(while IFS= read -r l; do printf '%s ${label}| %s\\n' "$(date +%s%3N)" "$l" | cut -c1-160 >> ${log}; printf '%s\\n' "$l" >&2; done)`
      : `ip netns exec ${netns} ${real} "$@"`,
    "rc=$?",
    `printf '%s end ${label} rc=%s\\n' "$(date +%s%3N)" "$rc" >> ${log}`,
    "exit $rc",
    ""
  ].join("\n")

interface Timeline {
  readonly setting: string
  readonly seconds: number
  readonly firstByte?: number
  readonly half?: number
  readonly all?: number
  readonly events: ReadonlyArray<string>
  readonly error?: string
}

const sampleBytes = (dir: string, started: number, total: number) => {
  const marks: { first?: number; half?: number; all?: number } = {}
  let stop = false
  const loop = (async () => {
    while (!stop) {
      const b = await Tools.dirBytes(dir)
      const t = (Date.now() - started) / 1000
      if (b > 0 && marks.first === undefined) marks.first = t
      if (b >= total / 2 && marks.half === undefined) marks.half = t
      if (b >= total && marks.all === undefined) marks.all = t
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  return {
    marks,
    stop: async () => {
      stop = true
      await loop
    }
  }
}

const once = async (world: WanWorld.WanWorld, work: string, setting: string, round: number): Promise<Timeline> => {
  const tag = setting.replace(/[^\w-]/g, "_")
  const log = path.join(work, `${tag}-${round}.log`)
  await fs.writeFile(log, "")
  const ssh = path.join(work, "ssh-timed")
  const bbcpTimed = path.join(work, "bbcp-timed")
  await fs.writeFile(ssh, wrapper(log, "ssh", "ssh", world.chile.netns), { mode: 0o755 })
  await fs.writeFile(bbcpTimed, wrapper(log, "bbcp", bbcp, world.chile.netns, true), { mode: 0o755 })
  const source = path.join(work, "bundle")
  const destRoot = path.join(work, "cologne", `${tag}-${round}`)
  await fs.mkdir(destRoot, { recursive: true })
  const started = Date.now()
  const sampler = sampleBytes(destRoot, started, bytes)
  let error: string | undefined
  const { kind, w, B } = parseSetting(setting)
  if (kind === "bare") {
    const dst = path.join(destRoot, "run")
    await fs.mkdir(dst, { recursive: true })
    const argv = [
      bbcpTimed,
      ...(files > 1 ? ["-r"] : []),
      "-s",
      String(streams),
      ...(w === undefined ? [] : ["-w", w]),
      ...(B === undefined ? [] : ["-B", B]),
      "-P",
      "2",
      "-v",
      "-T",
      Tools.bbcpTarget(world, bbcp),
      files > 1 ? source : path.join(source, "obs-000.bin"),
      `${world.cologne.address}:${dst}/`
    ]
    const out = await new Promise<number | null>((resolve) => spawn(argv[0]!, argv.slice(1), { stdio: "ignore" }).once("close", resolve))
    if (out !== 0) error = `bare bbcp exit ${out}`
  } else {
    const adapter = BbcpTransfer.make({
      bbcp: bbcpTimed,
      remoteBbcp: bbcp,
      ssh,
      shareConnection: kind === "shared",
      tuning: { streams, ...(w === undefined ? {} : { window: w }), ...(B === undefined ? {} : { blockSize: B }) },
      retry: TransferAdapter.noRetry,
      verify
    })
    const request: TransferAdapter.Request = files > 1
      ? { source: TransferEndpoint.local(source), destination: world.cologneEndpoint(path.join(destRoot, "run")), kind: "directory" }
      : {
        source: TransferEndpoint.local(path.join(source, "obs-000.bin")),
        destination: world.cologneEndpoint(path.join(destRoot, "run.bin")),
        kind: "file"
      }
    const exit = await Effect.runPromise(Effect.either(adapter.transfer(request)))
    if (exit._tag === "Left") error = exit.left.message
  }
  const seconds = (Date.now() - started) / 1000
  await sampler.stop()
  const events = (await fs.readFile(log, "utf8"))
    .split("\n")
    .filter((l) => l !== "")
    .sort((a, b) => Number(a.split(" ")[0]) - Number(b.split(" ")[0]))
    .map((l) => {
      const [ms, ...rest] = l.split(" ")
      return `${((Number(ms) - started) / 1000).toFixed(2).padStart(6)} s  ${rest.join(" ")}`
    })
  await fs.rm(destRoot, { recursive: true, force: true })
  const { first, half, all } = sampler.marks
  return {
    setting,
    seconds,
    ...(first === undefined ? {} : { firstByte: first }),
    ...(half === undefined ? {} : { half }),
    ...(all === undefined ? {} : { all }),
    events,
    ...(error === undefined ? {} : { error })
  }
}

const show = (t: Timeline) => {
  const f = (v: number | undefined) => (v === undefined ? "-" : `${v.toFixed(2)} s`)
  const rate = t.all !== undefined && t.firstByte !== undefined && t.all > t.firstByte
    ? ((bytes / 1e6) / (t.all - t.firstByte)).toFixed(1)
    : "-"
  console.log(
    `${t.setting}: ${(bytes / 1e6 / t.seconds).toFixed(1)} MB/s whole (${t.seconds.toFixed(2)} s); first byte ${f(t.firstByte)}, half ${
      f(t.half)
    }, all ${f(t.all)}; ${rate} MB/s once flowing${t.error === undefined ? "" : `; FAILED: ${t.error}`}`
  )
  for (const e of t.events) console.log(`    ${e}`)
}

const main = async (world: WanWorld.WanWorld, work: string) => {
  console.log(`writing ${files} file(s), ${(bytes / 1024 ** 2).toFixed(0)} MiB`)
  await Tools.writeBundle(path.join(work, "bundle"), bytes, files)
  await Effect.runPromise(world.setCongestionControl(cc as WanWorld.CongestionControl))
  const rtt = await Effect.runPromise(world.connectMs(world.sshd!.port, 5000))
  console.log(
    `link ${world.id}: TCP connect ${rtt?.toFixed(1)} ms, ${cc}, ${streams} streams, verify ${verify}; load ${
      os.loadavg().map((l) => l.toFixed(1)).join(" ")
    }`
  )
  const all: Array<Timeline> = []
  const iperf = Tools.serve(world, "cologne", ["iperf3", "-s"])
  await Tools.waitListening(world, 5201)
  for (let round = 1; round <= rounds; round++) {
    const ceiling = await Tools.iperf3(world, streams, 8)
    console.log(`\n[round ${round}] iperf3 -P ${streams}: ${typeof ceiling === "number" ? `${ceiling.toFixed(1)} MB/s` : ceiling}`)
    for (const s of settings) {
      const t = await once(world, work, s, round)
      all.push(t)
      console.log(`\n[round ${round}] load ${os.loadavg()[0]!.toFixed(1)}`)
      show(t)
    }
  }
  iperf.stop()
  console.log("\n## Summary (MB/s whole transfer; seconds to the first byte)")
  for (const s of settings) {
    const ts = all.filter((t) => t.setting === s && t.error === undefined)
    console.log(`${s}: ${ts.map((t) => `${(bytes / 1e6 / t.seconds).toFixed(1)} (${t.firstByte?.toFixed(1) ?? "-"} s)`).join(", ")}`)
  }
}

if (process.getuid?.() !== 0) fail("needs root (network namespaces)")
NodeRuntime.runMain(
  Effect.scoped(
    Effect.gen(function* () {
      const work = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bbcp-phases-"))),
        (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
      )
      const world = yield* WanWorld.make({})
      yield* Effect.promise(() => main(world, work))
    })
  )
)
