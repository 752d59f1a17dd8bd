/**
 * A test kit for an emulated Chile ↔ Cologne link: three network namespaces built by
 * `wan/wan.sh` (chile, a router, cologne), about 110 ms each way through our NFQUEUE delay
 * helper, a rate bottleneck, random loss and partitions on demand, and a real sshd in cologne
 * with its own config, host key and authorised client key (`scripts/sshd.ts`). Scoped: the link
 * is built when the scope opens and removed, with everything started in it, when it closes.
 * Needs root; without it (or without namespaces) `make` fails with a reason, never skips.
 */
import { TransferEndpoint } from "@ccat/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Sshd from "../../../../scripts/sshd.js"

/** The link's control script. */
export const script = fileURLToPath(new URL("../../../../wan/wan.sh", import.meta.url))

/** Where wan.sh keeps each link's state (its params, the helper's pid and log). */
export const runRoot = process.env["CCAT_WAN_RUN"] ?? "/run/ccat-wan"

/** Why the kit could not do what it was asked. */
export class WanError extends Data.TaggedError("WanError")<{
  readonly reason: "NotRoot" | "BadInput" | "CommandFailed"
  readonly message: string
}> {}

/** The three namespaces of the link. */
export type HostName = "chile" | "router" | "cologne"

/** One end (or the router) of the link. */
export interface Host {
  readonly name: HostName
  /** The network namespace it lives in. */
  readonly netns: string
  /** Its address on the link (the router's on the chile side). */
  readonly address: string
}

/** Which way a loss or partition applies. */
export type Direction = "both" | "to-cologne" | "to-chile"

/** Congestion control set on the routes between the hosts (`default`: the namespace's own). */
export type CongestionControl = "bbr" | "cubic" | "reno" | "default"

/** How the link is built; the defaults are the Chile ↔ Cologne figures. */
export interface Options {
  /** One-way delay in ms (default 110, a 220 ms round trip). */
  readonly delayMs?: number
  /** The delay helper's rate bottleneck in Mbit/s, or "off" (default 1000). */
  readonly rateMbit?: number | "off"
  /** The bottleneck's buffer in ms of traffic (default 100). */
  readonly bufferMs?: number
  /** Random loss on each crossing packet, both directions (default 0). */
  readonly loss?: number
  readonly congestionControl?: CongestionControl
  /** Start an sshd in cologne (default true). */
  readonly sshd?: boolean
}

/** What a command printed and how it ended. */
export interface ExecResult {
  readonly exitCode: number
  readonly stdout: string
  readonly stderr: string
}

/** A running emulated link. */
export interface WanWorld {
  /** The unique prefix of this link's namespaces. */
  readonly id: string
  readonly chile: Host
  readonly router: Host
  readonly cologne: Host
  /** The iptables binary the link uses (wan.sh measured that it works in the router). */
  readonly iptables: string
  /** Runs argv inside a namespace; fails on a non-zero exit unless `allowFailure`. */
  readonly exec: (
    host: HostName,
    argv: ReadonlyArray<string>,
    options?: { readonly timeoutMs?: number; readonly allowFailure?: boolean }
  ) => Effect.Effect<ExecResult, WanError>
  /** Drops all traffic (one way or both) until `heal`. */
  readonly partition: (direction?: Direction) => Effect.Effect<void, WanError>
  /** Removes every partition. */
  readonly heal: Effect.Effect<void, WanError>
  /** Random loss of share p (0 ≤ p < 1) of the packets crossing; 0 removes it. */
  readonly setLoss: (p: number, direction?: Direction) => Effect.Effect<void, WanError>
  /** A tbf rate limit on the router's egress (both ways), or "off". */
  readonly setRate: (mbit: number | "off", latencyMs?: number) => Effect.Effect<void, WanError>
  /** The delay helper's bottleneck rate and buffer, or "off". */
  readonly setBottleneck: (mbit: number | "off", bufferMs?: number) => Effect.Effect<void, WanError>
  /** The one-way delay in ms; held packets keep theirs, none is reordered. */
  readonly setDelay: (ms: number) => Effect.Effect<void, WanError>
  readonly setCongestionControl: (cc: CongestionControl) => Effect.Effect<void, WanError>
  /** Milliseconds a TCP connect from chile to cologne's port takes (one round trip), undefined on timeout or refusal. */
  readonly connectMs: (port: number, timeoutMs: number) => Effect.Effect<number | undefined, WanError>
  /** The ids of every process running in the link's namespaces. */
  readonly pids: Effect.Effect<ReadonlyArray<number>, WanError>
  /** The sshd in cologne (undefined when not asked for). */
  readonly sshd: Sshd.Sshd | undefined
  /** An ssh program that runs ssh inside chile: the rsync adapter's `ssh` option. */
  readonly chileSsh: string
  /** An ssh endpoint at cologne's sshd, for a transfer started in chile. */
  readonly cologneEndpoint: (p: string) => TransferEndpoint.Ssh
}

const run = (file: string, args: ReadonlyArray<string>, timeoutMs: number) =>
  Effect.async<ExecResult, WanError>((resume) => {
    const child = execFile(
      file,
      [...args],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        if (error === null) {
          return resume(Effect.succeed({ exitCode: 0, stdout, stderr }))
        }
        if (typeof error.code === "number" && error.killed !== true) return resume(Effect.succeed({ exitCode: error.code, stdout, stderr }))
        const why = error.killed === true ? `timed out after ${timeoutMs} ms` : error.message
        resume(Effect.fail(new WanError({ reason: "CommandFailed", message: `${file} ${args.join(" ")}: ${why}; ${stderr.trim()}` })))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const wan = (args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  run(script, args, timeoutMs).pipe(
    Effect.filterOrFail(
      (r) => r.exitCode === 0,
      (r) =>
        new WanError({
          reason: r.exitCode === 2 ? "BadInput" : "CommandFailed",
          message: `wan.sh ${args.join(" ")}: ${r.stderr.trim() || `exit ${r.exitCode}`}`
        })
    ),
    Effect.withSpan("WanWorld.wan", { attributes: { args: args.join(" ") } })
  )

const checkNumber = (name: string, v: number, min: number, max: number, maxExclusive = false) =>
  Number.isFinite(v) && v >= min && (maxExclusive ? v < max : v <= max)
    ? Effect.void
    : Effect.fail(
      new WanError({
        reason: "BadInput",
        message: `${name} must be a number from ${min} to ${max}${maxExclusive ? " (exclusive)" : ""}, got ${v}`
      })
    )

// Connects from inside chile and prints the time to the SYN-ACK, or "timeout"/"error".
const connectProbe = `
const net = require("node:net"); const [host, port, ms] = process.argv.slice(1)
const t = process.hrtime.bigint(); const s = net.connect(Number(port), host)
const timer = setTimeout(() => { console.log("timeout"); s.destroy(); process.exit(0) }, Number(ms))
s.on("connect", () => { console.log(Number(process.hrtime.bigint() - t) / 1e6); clearTimeout(timer); s.destroy() })
s.on("error", (e) => { console.log("error " + e.code); clearTimeout(timer) })
`

/** A fresh link id: a letter and seven hex digits, unique enough for parallel runs. */
export const freshId = (): string => `w${randomBytes(4).toString("hex").slice(0, 7)}`

/** Builds the link (and the sshd) in the current scope; closing the scope removes all of it. */
export const make = (options: Options = {}): Effect.Effect<WanWorld, WanError, Scope.Scope> =>
  Effect.gen(function* () {
    if (process.getuid?.() !== 0) {
      return yield* new WanError({
        reason: "NotRoot",
        message: "the WAN kit needs root for network namespaces, iptables and tc (CI runs as root)"
      })
    }
    yield* checkNumber("delayMs", options.delayMs ?? 110, 0, 10_000)
    if (options.rateMbit !== undefined && options.rateMbit !== "off") yield* checkNumber("rateMbit", options.rateMbit, 0.001, 100_000)
    yield* checkNumber("bufferMs", options.bufferMs ?? 100, 0, 10_000)
    yield* checkNumber("loss", options.loss ?? 0, 0, 1, true)
    const id = freshId()
    const host = (name: HostName, address: string): Host => ({ name, netns: `${id}-${name}`, address })
    const chile = host("chile", "10.220.1.2")
    const router = host("router", "10.220.1.1")
    const cologne = host("cologne", "10.220.2.2")
    const up = [
      "up",
      id,
      "--delay-ms",
      String(options.delayMs ?? 110),
      "--rate-mbit",
      String(options.rateMbit ?? 1000),
      "--buffer-ms",
      String(options.bufferMs ?? 100),
      "--loss",
      String(options.loss ?? 0),
      "--cc",
      options.congestionControl ?? "default"
    ]
    yield* Effect.acquireRelease(
      wan(up, 120_000),
      () => wan(["down", id]).pipe(Effect.catchAll((e) => Effect.logError(`WAN ${id} teardown failed: ${e.message}`)))
    )
    const iptables = (yield* Effect.promise(() => fs.readFile(path.join(runRoot, id, "iptables"), "utf8"))).trim()
    const exec: WanWorld["exec"] = (name, argv, execOptions = {}) =>
      run("ip", ["netns", "exec", `${id}-${name}`, ...argv], execOptions.timeoutMs ?? 60_000).pipe(
        Effect.filterOrFail(
          (r) => r.exitCode === 0 || execOptions.allowFailure === true,
          (r) => new WanError({ reason: "CommandFailed", message: `in ${name}: ${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.trim()}` })
        )
      )
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), `ccat-wan-${id}-`))),
      (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    )
    const chileSsh = path.join(dir, "ssh-in-chile")
    yield* Effect.promise(() => fs.writeFile(chileSsh, `#!/bin/sh\nexec ip netns exec ${chile.netns} ssh "$@"\n`, { mode: 0o755 }))
    const listening = (port: number) =>
      Effect.runPromise(
        exec("cologne", ["ss", "-Hltn", `sport = :${port}`], { timeoutMs: 10_000 }).pipe(
          Effect.map((r) => r.stdout.trim() !== ""),
          Effect.orElseSucceed(() => false)
        )
      )
    const sshd = options.sshd === false
      ? undefined
      : yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            Sshd.start({ listenAddress: cologne.address, port: 22, wrap: ["ip", "netns", "exec", cologne.netns], accepts: listening }),
          catch: (e) => new WanError({ reason: "CommandFailed", message: `sshd in ${cologne.netns}: ${String(e)}` })
        }),
        (s) => Effect.promise(() => s.stop())
      )
    const world: WanWorld = {
      id,
      chile,
      router,
      cologne,
      iptables,
      exec,
      partition: (direction = "both") => wan(["partition", id, direction]),
      heal: wan(["heal", id]),
      setLoss: (p, direction = "both") => checkNumber("loss", p, 0, 1, true).pipe(Effect.zipRight(wan(["loss", id, String(p), direction]))),
      setRate: (mbit, latencyMs = 50) =>
        (mbit === "off" ? Effect.void : checkNumber("rate", mbit, 0.001, 100_000)).pipe(
          Effect.zipRight(wan(["rate", id, String(mbit), String(latencyMs)]))
        ),
      setBottleneck: (mbit, bufferMs) =>
        (mbit === "off" ? Effect.void : checkNumber("bottleneck", mbit, 0.001, 100_000)).pipe(
          Effect.zipRight(wan(["bottleneck", id, String(mbit), ...(bufferMs === undefined ? [] : [String(bufferMs)])]))
        ),
      setDelay: (ms) => checkNumber("delay", ms, 0, 10_000).pipe(Effect.zipRight(wan(["delay", id, String(ms)]))),
      setCongestionControl: (cc) => wan(["cc", id, cc]),
      connectMs: (port, timeoutMs) =>
        exec("chile", [process.execPath, "-e", connectProbe, cologne.address, String(port), String(timeoutMs)], {
          timeoutMs: timeoutMs + 30_000
        }).pipe(
          Effect.map((r) => {
            const ms = Number(r.stdout.trim())
            return Number.isFinite(ms) && r.stdout.trim() !== "" ? ms : undefined
          })
        ),
      pids: Effect.forEach([chile, router, cologne], (h) => run("ip", ["netns", "pids", h.netns], 10_000)).pipe(
        Effect.map((rs) => rs.flatMap((r) => r.stdout.split(/\s+/).filter((s) => s !== "").map(Number)))
      ),
      sshd,
      chileSsh,
      cologneEndpoint: (p) => {
        if (sshd === undefined) throw new Error("this WAN world was made without an sshd")
        return TransferEndpoint.ssh({
          host: sshd.host,
          port: sshd.port,
          user: sshd.user,
          identityFile: sshd.identityFile,
          sshOptions: sshd.sshOptions,
          path: p
        })
      }
    }
    yield* Effect.logInfo(
      `WAN ${id}: chile ${chile.address} ↔ cologne ${cologne.address}${sshd === undefined ? "" : `, sshd on ${sshd.host}:${sshd.port}`}`
    )
    return world
  }).pipe(Effect.withSpan("WanWorld.make"))

/** The link as a service, for tests that take it from a layer. */
export class Wan extends Context.Tag("@ccat/server/test/WanWorld")<Wan, WanWorld>() {}

/** Provides `Wan`, built once for the layer's lifetime. */
export const layer = (options: Options = {}): Layer.Layer<Wan, WanError> => Layer.scoped(Wan, make(options))
