/**
 * `ccat route bench` as an operator runs it: the real command line, a configuration file with
 * comments, a route over rsync through a real sshd on loopback (host key checked), and, when a
 * bbcp binary is on PATH, the same over bbcp. Checked: the printed table and the recommendation
 * (one of the measured settings), `--write` keeping the rest of the file and giving a
 * configuration the server accepts, probes gone from both buffers afterwards (also after Ctrl-C),
 * and bad input refused with the file and the buffers untouched. Timings are never asserted.
 */
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as YAML from "yaml"
import * as Sshd from "../../../../scripts/sshd.js"
import { load } from "../../src/ServerConfig.js"
import { ccat, freePort, tempDir } from "../support.js"
import { runCcat } from "./CliWorld.js"

const bbcpOnPath = await Effect.runPromise(BbcpTransfer.findBinary("bbcp").pipe(Effect.option))

let sshd: Sshd.Sshd | undefined
let knownHosts = ""
beforeAll(async () => {
  sshd = await Sshd.start()
  const hostKey = (await fs.readFile(path.join(sshd.dir, "host_ed25519.pub"), "utf8")).trim().split(/\s+/).slice(0, 2).join(" ")
  knownHosts = path.join(sshd.dir, "known_hosts")
  await fs.writeFile(knownHosts, `[${sshd.host}]:${sshd.port} ${hostKey}\n`)
}, 60_000)
const folders: Array<string> = []
afterAll(async () => {
  await Promise.all(folders.map((d) => fs.rm(d, { recursive: true, force: true })))
  await sshd?.stop()
}, 60_000)

/** A configuration as an operator keeps it: comments, flow mappings, a second route left alone. */
const configText = (
  dir: string,
  adapter: string,
  options: Record<string, unknown>,
  buffer = path.join(dir, "cologne-buffer")
) => `# CCAT topology of the test (comments must survive --write)
sites:
  - name: chile
    shortName: cl
    locations:
      - { name: chile-source, type: SOURCE, technology: disk, driver: { root: ${dir}/chile-source } }
      - { name: chile-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/chile-buffer } }   # the telescope's buffer
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${buffer} } }
      - { name: cologne-archive, type: LONG_TERM_ARCHIVE, technology: disk, driver: { root: ${dir}/cologne-archive }, retention: { keepForever: true } }
routes:
  # over the WAN
  - from: chile
    to: cologne
    adapter: ${adapter}
    options: ${JSON.stringify(options)}
    priority: 0   # first choice
  - from: cologne
    to: chile
    adapter: local
    priority: 5
policy:
  bundleMinBytes: 1 MB
  bundleMaxWait: 10 minutes  # the night's last bundle
`

const sshOptions = () => ({
  host: sshd!.host,
  port: sshd!.port,
  user: sshd!.user,
  identityFile: sshd!.identityFile,
  sshOptions: ["StrictHostKeyChecking=yes", `UserKnownHostsFile=${knownHosts}`, "LogLevel=ERROR"]
})

/** A fresh folder with the buffers and a configuration file. */
const world = async (adapter: string, options: Record<string, unknown>, buffer?: string) => {
  const dir = await tempDir("ccat-route-bench-")
  folders.push(dir)
  for (const d of ["chile-source", "chile-buffer", "cologne-buffer", "cologne-archive"]) await fs.mkdir(path.join(dir, d))
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(file, configText(dir, adapter, options, buffer))
  return { dir, file, text: await fs.readFile(file, "utf8") }
}

/** Every entry in both buffers: probes must never stay behind. */
const inBuffers = async (dir: string) => [
  ...(await fs.readdir(path.join(dir, "chile-buffer"))).map((e) => `chile-buffer/${e}`),
  ...(await fs.readdir(path.join(dir, "cologne-buffer")).catch(() => [])).map((e) => `cologne-buffer/${e}`)
]

/** Waits for a condition, looking every 100 ms, at most `ms`; false when it never held. */
const until = async (condition: () => Promise<boolean>, ms: number): Promise<boolean> => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await condition()) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

const comments = (text: string) => text.split("\n").flatMap((l) => (/#\s*(.+)$/.exec(l)?.[1] ?? []) as Array<string>)

interface Report {
  readonly settings: ReadonlyArray<{ label: string; atOnce: number; options: Record<string, unknown>; rate: number; error?: string }>
  readonly recommended: string
  readonly best: string
  readonly perTransferRate: number
  readonly bundleBytes: number
  readonly written: boolean
}

/** `--write` changed what it says and nothing else, and the result is what `ccat serve` accepts. */
const checkWritten = async (
  file: string,
  before: string,
  report: Report,
  changed: { fields: ReadonlyArray<string>; options: ReadonlyArray<string> }
) => {
  const after = await fs.readFile(file, "utf8")
  for (const c of comments(before)) assert.include(after, c, "a comment was lost")
  const old = YAML.parse(before)
  const now = YAML.parse(after)
  for (const k of changed.fields) delete now.routes[0][k]
  for (const k of changed.options) {
    delete now.routes[0].options[k]
    delete old.routes[0].options[k]
  }
  assert.deepStrictEqual(now, old, "--write changed more than the route's measured settings")
  const config = await Effect.runPromise(load({ configFile: file }))
  const route = config.topology.routes[0]!
  assert.isAbove(route.measuredBandwidth!, 0)
  return { route, config }
}

// The cases work in folders of their own and mostly wait on ssh, rsync and each command's
// start-up, so they run at once.
describe.concurrent("ccat route bench", () => {
  it(
    "rsync over ssh: a table of 1, 2 and 4 transfers at once, a recommendation among them, --write keeps the file's rest, no probe left",
    async () => {
      // the run that prints and the run that writes each get a folder and a file of their own,
      // so they run side by side; timings are not compared between them
      const [w, ww] = await Promise.all([world("rsync", sshOptions()), world("rsync", sshOptions())])
      const [shown, written] = await Promise.all([
        runCcat(["route", "bench", "chile->cologne", "--config", w.file, "--probe-size", "2 MB", "--rounds", "1"], {}),
        runCcat([
          "route",
          "bench",
          "chile->cologne",
          "--config",
          ww.file,
          "--probe-size",
          "2 MB",
          "--rounds",
          "1",
          "--transfer-time",
          "20 minutes",
          "--write",
          "--json"
        ], {})
      ])
      assert.strictEqual(shown.code, 0, shown.stderr)
      const rows = shown.stdout.split("\n").filter((l) => /^\s+(\* )?\d at once\s/.test(l))
      assert.deepStrictEqual(rows.map((l) => /(\d) at once/.exec(l)![1]), ["1", "2", "4"])
      assert.strictEqual(rows.filter((l) => l.trimStart().startsWith("* ")).length, 1)
      assert.match(shown.stdout, /SETTING\s+SETUP\s+WHOLE\s+FLOWING/)
      assert.match(shown.stdout, /recommended: [124] at once, /)
      assert.match(shown.stdout, /bundle size: /)
      assert.match(shown.stdout, /run again with --write/)
      assert.strictEqual(await fs.readFile(w.file, "utf8"), w.text, "without --write the file is not touched")
      assert.deepStrictEqual(await inBuffers(w.dir), [])

      assert.strictEqual(written.code, 0, written.stderr)
      const report = JSON.parse(written.stdout) as Report
      const labels = report.settings.map((s) => s.label)
      assert.deepStrictEqual(labels, ["1 at once", "2 at once", "4 at once"])
      assert.include(labels, report.recommended)
      const chosen = report.settings.find((s) => s.label === report.recommended)!
      const best = report.settings.find((s) => s.label === report.best)!
      assert.isAtLeast(chosen.rate, best.rate * 0.95)
      assert.isTrue(report.written)
      const { route, config } = await checkWritten(ww.file, ww.text, report, {
        fields: ["maxConcurrentTransfers", "measuredBandwidth", "bundleTransferTime"],
        options: []
      })
      assert.strictEqual(route.maxConcurrentTransfers, chosen.atOnce)
      assert.strictEqual(route.bundleTransferTime, 20 * 60_000)
      assert.approximately(route.measuredBandwidth!, report.perTransferRate, Math.max(1, report.perTransferRate * 0.01))
      assert.strictEqual(config.topology.routes[1]!.adapter, "local")
      assert.deepStrictEqual(await inBuffers(ww.dir), [])
    },
    300_000
  )

  it("bad input is refused with what is wrong, the file and the buffers untouched", async () => {
    const closed = await freePort()
    const [known, unreachable, missingFolder] = await Promise.all([
      world("rsync", sshOptions()),
      world("rsync", { ...sshOptions(), port: closed }),
      world("rsync", sshOptions(), "/nonexistent/cologne-buffer")
    ])
    const runs = await Promise.all([
      runCcat(["route", "bench", "chile->nowhere", "--config", known.file, "--write"], {}),
      runCcat(["route", "bench", "7", "--config", known.file], {}),
      runCcat(["route", "bench", "chile->cologne", "--config", known.file, "--probe-size", "lots", "--write"], {}),
      runCcat(["route", "bench", "chile->cologne", "--config", known.file, "--rounds", "9", "--write"], {}),
      runCcat(["route", "bench", "chile->cologne", "--config", unreachable.file, "--write"], {}),
      runCcat(["route", "bench", "chile->cologne", "--config", missingFolder.file, "--write"], {})
    ])
    const [unknownRoute, badIndex, badSize, badRounds, noSsh, noFolder] = runs
    for (const r of runs) assert.strictEqual(r.code, 1, r.stdout + r.stderr)
    assert.match(
      unknownRoute!.stderr,
      /ccat: no route chile -> nowhere is configured; the configured routes are 0: chile -> cologne \(rsync\); 1: cologne -> chile \(local\)/
    )
    assert.match(badIndex!.stderr, /there is no route 7/)
    assert.match(badSize!.stderr, /--probe-size: "lots" must be a size/)
    assert.match(badRounds!.stderr, /--rounds: must be 1 to 5, got 9/)
    assert.match(
      noSsh!.stderr,
      /route chile -> cologne: the destination buffer cologne-buffer's folder .* cannot be reached: .*(refused|Connection)/i
    )
    assert.match(
      noFolder!.stderr,
      /the destination buffer cologne-buffer's folder .*\/nonexistent\/cologne-buffer is not a writable folder/
    )
    for (const w of [known, unreachable, missingFolder]) {
      assert.strictEqual(await fs.readFile(w.file, "utf8"), w.text)
      assert.deepStrictEqual(await inBuffers(w.dir), [])
    }
  }, 300_000)

  it("Ctrl-C while probing removes the probes at both ends", async () => {
    const w = await world("rsync", sshOptions())
    const running = ccat(["route", "bench", "chile->cologne", "--config", w.file, "--probe-size", "300 MB"])
    // the probes exist at both ends: the source's written, the first transfer under way
    const probing = await until(
      async () =>
        running.child.exitCode !== null || (await inBuffers(w.dir)).filter((e) => e.includes(".ccat-tmp-route-bench-")).length === 2,
      120_000
    )
    assert.isTrue(probing && running.child.exitCode === null, `the bench ended or never started probing:\n${running.output()}`)
    running.child.kill("SIGINT")
    await running.exited
    assert.include(running.output(), "ccat: route bench interrupted: nothing is written, and the probes are removed at both ends")
    assert.deepStrictEqual(await inBuffers(w.dir), [])
    assert.strictEqual(await fs.readFile(w.file, "utf8"), w.text)
  }, 300_000)
})

if (bbcpOnPath._tag === "Some") {
  const binary = bbcpOnPath.value
  console.log(`[bbcp] ccat route bench over bbcp: RUN against ${binary}`)
  describe("ccat route bench over bbcp", () => {
    it("1, 4, 8 and 16 streams, then windows at the best count; --write sets streams and window", async () => {
      const w = await world("bbcp", { ...sshOptions(), bbcp: binary, remoteBbcp: binary, checksum: "a32" })
      const r = await runCcat([
        "route",
        "bench",
        "chile->cologne",
        "--config",
        w.file,
        "--probe-size",
        "4 MB",
        "--rounds",
        "1",
        "--write",
        "--json"
      ], {})
      assert.strictEqual(r.code, 0, r.stderr)
      const report = JSON.parse(r.stdout) as Report
      const labels = report.settings.map((s) => s.label)
      assert.deepStrictEqual(labels.slice(0, 4), ["1 stream", "4 streams", "8 streams", "16 streams"])
      assert.strictEqual(labels.length, 6, labels.join("; "))
      for (const s of report.settings) assert.isUndefined(s.error, `${s.label}: ${s.error}`)
      assert.include(labels, report.recommended)
      const chosen = report.settings.find((s) => s.label === report.recommended)!
      const { route } = await checkWritten(w.file, w.text, report, {
        fields: ["measuredBandwidth", "bundleTransferTime"],
        options: ["streams", "window"]
      })
      assert.strictEqual(route.options.streams, chosen.options.streams)
      assert.strictEqual(route.options.checksum, "a32")
      assert.strictEqual(route.bundleTransferTime, 3_600_000)
      assert.deepStrictEqual(await inBuffers(w.dir), [])
    }, 300_000)
  })
} else {
  console.log("[bbcp] ccat route bench over bbcp: NOT RUN (no bbcp binary on PATH)")
  describe("ccat route bench over bbcp", () => {
    it("NOT RUN: no bbcp binary on PATH (put one there to bench a bbcp route)", () => {
      assert.strictEqual(bbcpOnPath._tag, "None")
    })
  })
}
