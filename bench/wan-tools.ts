/**
 * The runners of the WAN transfer benchmark (`bench/wan-transfer.ts`): the bundle on disk, the
 * bytes a destination holds, capped processes started in one of the link's namespaces, iperf3,
 * an rsync daemon reachable only from chile, and bbcp. Each runner returns what it moved and how
 * long it took; a run that hits the cap is stopped and counted by the bytes that arrived.
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type * as WanWorld from "../packages/server/test/wan/WanWorld.js"

/** How one run went. */
export interface Run {
  readonly bytes: number
  readonly seconds: number
  /** Stopped at the cap: `bytes` is what had arrived by then. */
  readonly capped: boolean
  readonly ok: boolean
  readonly detail?: string
  /** Seconds until the first byte reached the destination, where the runner watched for it. */
  readonly firstByteSeconds?: number
  /**
   * MB/s past TCP's ramp-up, where the runner sampled the bytes arriving: from a quarter of them
   * to nine tenths, as iperf3's figure leaves out its first seconds.
   */
  readonly steadyMBps?: number
}

/** Bytes seen at the destination at a time (ms). */
interface Sample {
  readonly ms: number
  readonly bytes: number
}

/** The rate between the first samples past a quarter and past nine tenths of `total`; undefined under a second apart. */
const steadyOf = (samples: ReadonlyArray<Sample>, total: number): number | undefined => {
  const from = samples.find((x) => x.bytes >= total / 4)
  const to = samples.find((x) => x.bytes >= (total * 9) / 10)
  if (from === undefined || to === undefined || to.ms - from.ms < 1000) return undefined
  return (to.bytes - from.bytes) / 1e3 / (to.ms - from.ms)
}

/** MB/s (10^6 bytes) of a run. */
export const mbps = (r: Run): number => r.bytes / 1e6 / Math.max(r.seconds, 1e-3)

/** Writes `files` files of random data adding up to `bytes` under `dir`. */
export const writeBundle = async (dir: string, bytes: number, files: number): Promise<void> => {
  await fs.mkdir(dir, { recursive: true })
  const chunk = Buffer.alloc(4 * 1024 * 1024)
  const per = Math.floor(bytes / files)
  for (let i = 0; i < files; i++) {
    const size = i === files - 1 ? bytes - per * (files - 1) : per
    const fh = await fs.open(path.join(dir, `obs-${String(i).padStart(3, "0")}.bin`), "w")
    try {
      for (let written = 0; written < size;) {
        const n = Math.min(chunk.length, size - written)
        randomFillSync(chunk, 0, n)
        await fh.write(chunk, 0, n)
        written += n
      }
    } finally {
      await fh.close()
    }
  }
}

/** Bytes of all regular files under `dir` (partial files included); 0 when it does not exist. */
export const dirBytes = async (dir: string): Promise<number> => {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  let total = 0
  for (const e of entries) {
    if (!e.isFile()) continue
    const st = await fs.stat(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).catch(() => undefined)
    total += st?.size ?? 0
  }
  return total
}

/** CPU seconds a process has used so far (user + system), 0 when it is gone. */
export const cpuSeconds = async (pid: number): Promise<number> => {
  const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => "")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100
}

/**
 * Runs argv in a namespace, printing the destination's progress every 10 s, and kills its
 * process group at the cap. The destination's bytes at the end are what the run moved.
 */
export const capped = async (
  world: WanWorld.WanWorld,
  host: WanWorld.HostName,
  argv: ReadonlyArray<string>,
  destination: string,
  capSeconds: number,
  label: string
): Promise<Run> => {
  const started = Date.now()
  const child = spawn("ip", ["netns", "exec", `${world.id}-${host}`, ...argv], { detached: true, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout.on("data", (c) => (output = (output + String(c)).slice(-4000)))
  child.stderr.on("data", (c) => (output = (output + String(c)).slice(-4000)))
  let timedOut = false
  const ticker = setInterval(() => {
    void dirBytes(destination).then((b) => {
      const s = (Date.now() - started) / 1000
      console.log(`    ${label}: ${(b / 1e6).toFixed(0)} MB after ${s.toFixed(0)} s (${(b / 1e6 / s).toFixed(1)} MB/s)`)
    })
  }, 10_000)
  const cap = setTimeout(() => {
    timedOut = true
    try {
      process.kill(-child.pid!, "SIGKILL")
    } catch {
      child.kill("SIGKILL")
    }
  }, capSeconds * 1000)
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)))
  clearInterval(ticker)
  clearTimeout(cap)
  const seconds = (Date.now() - started) / 1000
  const bytes = await dirBytes(destination)
  const ok = code === 0 && !timedOut
  return {
    bytes,
    seconds,
    capped: timedOut,
    ok,
    ...(ok ? {} : { detail: timedOut ? `stopped at the ${capSeconds} s cap` : output.trim().split("\n").slice(-3).join(" / ") })
  }
}

/** Starts a long-running server in a namespace; it dies with the namespace at the latest. */
export const serve = (world: WanWorld.WanWorld, host: WanWorld.HostName, argv: ReadonlyArray<string>) => {
  const child = spawn("ip", ["netns", "exec", `${world.id}-${host}`, ...argv], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.on("data", (c) => (stderr = (stderr + String(c)).slice(-2000)))
  return {
    stop: () => {
      if (child.exitCode === null) child.kill("SIGTERM")
    },
    stderr: () => stderr,
    exited: () => child.exitCode !== null
  }
}

/** Waits (at most `boundMs`) until something listens on `port` in cologne. */
export const waitListening = async (world: WanWorld.WanWorld, port: number, boundMs = 10_000): Promise<void> => {
  const deadline = Date.now() + boundMs
  for (let round = 0; round < 1000 && Date.now() < deadline; round++) {
    const out = await new Promise<string>((resolve) => {
      const c = spawn("ip", ["netns", "exec", world.cologne.netns, "ss", "-Hltn", `sport = :${port}`])
      let s = ""
      c.stdout.on("data", (d) => (s += String(d)))
      c.once("close", () => resolve(s))
    })
    if (out.trim() !== "") return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`nothing listens on ${world.cologne.address}:${port} after ${boundMs} ms`)
}

/** iperf3 from chile to cologne with `streams` parallel streams: payload MB/s after the ramp-up. */
export const iperf3 = async (world: WanWorld.WanWorld, streams: number, seconds: number): Promise<number | string> => {
  const omit = 3
  const out = await new Promise<string>((resolve) => {
    const c = spawn("ip", [
      "netns",
      "exec",
      world.chile.netns,
      "iperf3",
      "-c",
      world.cologne.address,
      "-P",
      String(streams),
      "-t",
      String(seconds),
      "-O",
      String(omit),
      "-J"
    ])
    let s = ""
    c.stdout.on("data", (d) => (s += String(d)))
    c.once("close", () => resolve(s))
  })
  try {
    const json = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string }
    const bps = json.end?.sum_received?.bits_per_second
    return bps === undefined ? `iperf3: ${json.error ?? "no result"}` : bps / 8 / 1e6
  } catch {
    return `iperf3 printed no JSON: ${out.slice(0, 200)}`
  }
}

/** An rsync daemon in cologne serving `root` as module `bench`, to chile's address only. */
export const rsyncDaemon = async (world: WanWorld.WanWorld, dir: string, root: string) => {
  const config = path.join(dir, "rsyncd.conf")
  await fs.writeFile(
    config,
    [
      `pid file = ${path.join(dir, "rsyncd.pid")}`,
      "use chroot = false",
      `log file = ${path.join(dir, "rsyncd.log")}`,
      "[bench]",
      `  path = ${root}`,
      "  read only = false",
      "  uid = root",
      "  gid = root",
      `  hosts allow = ${world.chile.address}`,
      "  hosts deny = *",
      ""
    ].join("\n")
  )
  const server = serve(world, "cologne", [
    "rsync",
    "--daemon",
    "--no-detach",
    `--config=${config}`,
    `--address=${world.cologne.address}`,
    "--port=873"
  ])
  await waitListening(world, 873)
  return server
}

/** The `-T` program bbcp runs to start itself in cologne over the link's sshd. */
export const bbcpTarget = (world: WanWorld.WanWorld, bbcp: string): string => {
  const s = world.sshd!
  return [
    "ssh",
    "-x",
    "-a",
    "-p",
    String(s.port),
    "-i",
    s.identityFile,
    ...["BatchMode=yes", ...s.sshOptions].flatMap((o) => ["-o", o]),
    "%I",
    "-l",
    "%U",
    "%H",
    bbcp
  ].join(" ")
}

/** A program that runs `binary` inside chile (for an adapter whose tool must start there). */
export const inChile = async (world: WanWorld.WanWorld, dir: string, binary: string): Promise<string> => {
  const program = path.join(dir, `${path.basename(binary)}-in-chile`)
  await fs.writeFile(program, `#!/bin/sh\nexec ip netns exec ${world.chile.netns} ${binary} "$@"\n`, { mode: 0o755 })
  return program
}

/**
 * Runs an adapter's transfer (an Effect) with the cap, printing the bytes under `root` (staging
 * included) every 10 s and when the first byte arrived. What `destination` holds at the end is
 * what the run moved; a capped run counts what `root` holds.
 */
export const cappedEffect = async <A, E>(
  transfer: Effect.Effect<A, E>,
  root: string,
  destination: string,
  capSeconds: number,
  label: string
): Promise<Run> => {
  const started = Date.now()
  let firstByte: number | undefined
  let stop = false
  const samples: Array<Sample> = []
  const watch = (async () => {
    for (let last = started; !stop;) {
      const b = await dirBytes(root)
      const now = Date.now()
      samples.push({ ms: now, bytes: b })
      if (b > 0 && firstByte === undefined) firstByte = (now - started) / 1000
      if (now - last >= 10_000) {
        last = now
        const s = (now - started) / 1000
        console.log(`    ${label}: ${(b / 1e6).toFixed(0)} MB after ${s.toFixed(0)} s (${(b / 1e6 / s).toFixed(1)} MB/s)`)
      }
      await new Promise((r) => setTimeout(r, firstByte === undefined ? 100 : 250))
    }
  })()
  const outcome = await Effect.runPromise(transfer.pipe(Effect.timeoutOption(`${capSeconds} seconds`), Effect.either))
  const seconds = (Date.now() - started) / 1000
  stop = true
  await watch
  const first = firstByte === undefined ? {} : { firstByteSeconds: firstByte }
  if (outcome._tag === "Left") {
    return {
      bytes: await dirBytes(destination),
      seconds,
      capped: false,
      ok: false,
      detail: String((outcome.left as { message?: string }).message ?? outcome.left),
      ...first
    }
  }
  if (outcome.right._tag === "None") {
    return { bytes: await dirBytes(root), seconds, capped: true, ok: false, detail: `stopped at the ${capSeconds} s cap`, ...first }
  }
  const bytes = await dirBytes(destination)
  const steady = steadyOf(samples, bytes)
  return { bytes, seconds, capped: false, ok: true, ...first, ...(steady === undefined ? {} : { steadyMBps: steady }) }
}
