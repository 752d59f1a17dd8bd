/**
 * The BBCP transfer adapter: parallel TCP streams and large windows for long fat links (Chile to
 * Cologne, 200-500 ms round trip). bbcp is not packaged for Debian, so the binary comes from
 * PATH or a configured path, and a missing one fails with a clear ToolMissing error.
 *
 * bbcp writes a resumed (`-a`) file under its target name with mode 0200 until complete, which
 * would break "no partial data under a final name" (DESIGN §4.3); so the adapter copies to a
 * hidden temporary name next to the destination and renames it once bbcp succeeded. `-a` and
 * `-k` are given on every attempt, since a resume needs them on the interrupted run too. Stopping
 * signals bbcp's whole process group: its agents outlive a killed parent (fixture 23).
 */
import { TransferAdapter, TransferError } from "@ccat/core"
import type { TransferEndpoint } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as BbcpCommand from "./BbcpCommand.js"
import * as BbcpOutput from "./BbcpOutput.js"

/** The adapter's name in results, errors and DataTransfer rows. */
export const name = "bbcp"

/** Options of the bbcp adapter, on top of the service's (retry, verify, timeout). */
export interface Options extends TransferAdapter.Options {
  /** The bbcp binary: a path, or a name looked up on PATH (default `bbcp`). */
  readonly bbcp?: string
  /** bbcp on the remote host (default `bbcp` on its PATH). */
  readonly remoteBbcp?: string
  /** The ssh binary used to start the remote bbcp (default `ssh`). */
  readonly ssh?: string
  /** Tuning passed through: streams (`-s`), window (`-w`), transmission md5 (`-e`), ports (`-Z`), reverse (`-z`). */
  readonly tuning?: Pick<BbcpCommand.Options, "streams" | "window" | "errorCheck" | "ports" | "reverse">
  /** Seconds between progress lines (default 2: `-P 1` floods, fixture 45). */
  readonly progressSeconds?: number
}

const missing = (binary: string) =>
  TransferError.make(
    name,
    "ToolMissing",
    `${binary} not found: bbcp is not packaged for Debian; build it (SLAC's bbcp) and put it on PATH, or set the adapter's bbcp option to its path`
  )

/** Finds the bbcp binary (a path, or a name on PATH), or fails with ToolMissing. */
export const findBinary = (binary = "bbcp"): Effect.Effect<string, TransferError.TransferError> =>
  Effect.tryPromise({
    try: async () => {
      const candidates = binary.includes("/") ? [binary] : (process.env.PATH ?? "").split(":").filter((d) => d !== "").map((d) => path.join(d, binary))
      for (const c of candidates) {
        if (await fs.access(c, fs.constants.X_OK).then(() => true, () => false)) return c
      }
      throw new Error("not found")
    },
    catch: () => missing(binary)
  })

const specOf = (endpoint: TransferEndpoint.Endpoint, p: string): BbcpCommand.FileSpec =>
  endpoint._tag === "Local" ? { path: p } : { path: p, host: endpoint.host, ...(endpoint.user === undefined ? {} : { user: endpoint.user }) }

/** Where an attempt writes before the rename, and where bbcp keeps its append signatures. */
export const stagingOf = (destination: string) => {
  const dir = path.posix.dirname(destination)
  const base = path.posix.basename(destination)
  return { dir, temp: `${dir}/.${base}.ccat-part`, checkpoints: `${dir}/.ccat-bbcp` }
}

/** The typed options and specs of one attempt (exported so the command can be logged and tested). */
export const plan = (request: TransferAdapter.Request, options: Options = {}) => {
  const staging = stagingOf(request.destination.path)
  const resume = request.resume ?? true
  const remote = (e: TransferEndpoint.Endpoint) => (e._tag === "Ssh" ? BbcpCommand.sshProgram(e, options.remoteBbcp ?? "bbcp", options.ssh) : undefined)
  const source = remote(request.source)
  const target = remote(request.destination)
  const typed: BbcpCommand.Options = {
    ...options.tuning,
    ...(resume ? { append: { checkpointDir: staging.checkpoints }, keep: true } : { force: true }),
    ...(request.kind === "directory" ? { recursive: true } : {}),
    ...(request.bandwidthLimit === undefined ? {} : { rateLimit: Math.round(request.bandwidthLimit) }),
    progressSeconds: options.progressSeconds ?? 2,
    verbose: true,
    ...(source === undefined ? {} : { sourceProgram: source }),
    ...(target === undefined ? {} : { targetProgram: target })
  }
  // a tree lands as <temp>/<basename of the source>
  const targetPath = request.kind === "directory" ? `${staging.temp}/` : staging.temp
  return { typed, sources: [specOf(request.source, request.source.path)], target: specOf(request.destination, targetPath), staging }
}

const q = TransferProcess.shellQuote

/** Moves the staged copy to its final name: a rename for a file, per-file renames for a tree. */
const publishScript = (request: TransferAdapter.Request, staging: ReturnType<typeof stagingOf>): string => {
  const d = request.destination.path
  if (request.kind === "file") return `mv -f -- ${q(staging.temp)} ${q(d)}`
  const s = `${staging.temp}/${path.posix.basename(request.source.path)}`
  return [
    "set -e",
    `mkdir -p -- ${q(d)}`,
    `cd -- ${q(s)}`,
    `find . -type d -exec mkdir -p -- ${q(d)}/{} \\;`,
    `find . -type f -exec mv -f -- {} ${q(d)}/{} \\;`,
    "cd /",
    `rm -rf -- ${q(staging.temp)}`
  ].join("; ")
}

const onHost = (endpoint: TransferEndpoint.Endpoint, script: string, ssh?: string) =>
  endpoint._tag === "Ssh"
    ? TransferHost.remote(name, endpoint, script, ssh).pipe(Effect.asVoid)
    : TransferProcess.run({ command: "sh", args: ["-c", script] }).pipe(
        Effect.mapError((e) => TransferError.make(name, "Unknown", e.message, { cause: e })),
        Effect.flatMap((o) =>
          o.exitCode === 0 ? Effect.void : Effect.fail(TransferError.make(name, /Read-only|Permission denied/.test(o.stderr) ? "PermissionDenied" : /No space/.test(o.stderr) ? "DestinationFull" : "Unknown", o.stderr.trim() || "publishing the copy failed"))
        )
      )

/** The minimal bbcp adapter (size, copy, manifest, remove), for composing or wrapping. */
export const minimal = (options: Options = {}): TransferAdapter.Minimal => ({
  name,
  capabilities: { resume: true, remote: true, directories: true, bandwidthLimit: true },
  size: (endpoint, kind) => TransferHost.size(name, endpoint, kind, options.ssh),
  manifest: (endpoint, kind, algorithm) => TransferHost.manifest(name, endpoint, kind, algorithm, options.ssh),
  remove: (endpoint) => TransferHost.remove(name, endpoint, options.ssh),
  copy: Effect.fn("BbcpTransfer.copy")(function* (request, report) {
    const binary = yield* findBinary(options.bbcp)
    const p = yield* Effect.try({
      try: () => plan(request, options),
      catch: (e) => TransferError.make(name, "InvalidRequest", e instanceof Error ? e.message : String(e))
    })
    const argv = yield* Effect.try({
      try: () => BbcpCommand.args(p.typed, p.sources, p.target),
      catch: (e) => TransferError.make(name, "InvalidRequest", e instanceof Error ? e.message : String(e))
    })
    yield* TransferHost.mkdirp(name, request.destination, request.kind === "directory" ? p.staging.temp : p.staging.dir, options.ssh)
    if (p.typed.append !== undefined) yield* TransferHost.mkdirp(name, request.destination, p.staging.checkpoints, options.ssh)
    const runtime = yield* Effect.runtime<never>()
    const started = Date.now()
    let done = 0
    let lastKey = ""
    const outcome = yield* TransferProcess.run({
      command: binary,
      args: argv,
      onLine: (line, stream) => {
        if (stream !== "stderr") return
        const l = BbcpOutput.parseLine(line)
        let bytes: number | undefined
        if (l._tag === "Progress" && request.kind === "file" && l.percent !== undefined) bytes = Math.round((l.percent * request.totalBytes) / 100)
        if (l._tag === "FileCreated") bytes = done += l.bytes
        if (bytes === undefined) return
        const key = `${bytes}`
        if (key === lastKey) return // -P 1 repeats identical lines
        lastKey = key
        Runtime.runFork(runtime)(report(TransferAdapter.progressOf(bytes, request.totalBytes, Date.now() - started)))
      }
    }).pipe(Effect.mapError((e) => (e.missing ? missing(binary) : TransferError.make(name, "Unknown", e.message, { cause: e }))))
    if (outcome.exitCode !== 0) {
      const f = BbcpOutput.classify(outcome.exitCode, outcome.signal, outcome.stderr)
      return yield* Effect.fail(
        TransferError.make(name, f.reason, f.detail, {
          ...(f.retryable === undefined ? {} : { retryable: f.retryable }),
          ...(outcome.exitCode === null ? {} : { exitCode: outcome.exitCode })
        })
      )
    }
    yield* onHost(request.destination, publishScript(request, p.staging), options.ssh)
    const parsed = BbcpOutput.parse(outcome.stderr)
    return {
      bytesSent: parsed.files.reduce((n, f) => n + f.bytes, 0),
      resumedBytes: parsed.appended.reduce((n, a) => n + a.offset, 0)
    }
  })
})

/** The full bbcp adapter: the core's verification, deadline and retries around `minimal`. */
export const make = (options: Options = {}): TransferAdapter.Service => TransferAdapter.make(minimal(options), options)

/** Provides the generic TransferAdapter tag with the bbcp adapter. */
export const layer = (options: Options = {}): Layer.Layer<TransferAdapter.TransferAdapter> =>
  Layer.succeed(TransferAdapter.TransferAdapter, make(options))
