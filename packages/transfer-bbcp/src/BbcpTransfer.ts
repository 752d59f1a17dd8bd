/**
 * The BBCP transfer adapter: parallel TCP streams and large windows for long fat links (Chile to
 * Cologne, 200-500 ms round trip). bbcp is not packaged for Debian, so the binary comes from
 * PATH or a configured path, and a missing one fails with a clear ToolMissing error.
 *
 * bbcp writes a resumed (`-a`) file under its target name with mode 0200 until complete, and
 * leaves its append signatures in the checkpoint folder it is given; either would break "no
 * partial data under a final name" (DESIGN §4.3) or leave extra entries beside the destination.
 * So each transfer owns one folder beside its destination, `.ccat-partial/<name>.bbcp/`, holding
 * the incomplete copy (`part`) and the signatures (`ckp`); after bbcp succeeded the copy is
 * renamed into place and the folder removed. `.ccat-partial` is the resume folder rsync uses
 * too, which the sweep and the inventory leave alone. `-a` and `-k` are given on every attempt,
 * since a resume needs them on the interrupted run too. Stopping signals bbcp's whole process
 * group: its agents outlive a killed parent (fixture 23).
 */
import { Checksum, TransferAdapter, TransferError } from "@ccat/core"
import type { TransferEndpoint } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as BbcpCommand from "./BbcpCommand.js"
import * as BbcpOutput from "./BbcpOutput.js"
import * as SshMux from "./SshMux.js"

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
  /** How bbcp uses the link; every field is passed to every attempt. */
  readonly tuning?: Tuning
  /** Seconds between progress lines (default 2: `-P 1` floods, fixture 45). */
  readonly progressSeconds?: number
  /** The ssh calls of a route's transfers share a master connection (default true; see SshMux). */
  readonly shareConnection?: boolean
  /** How long a route's shared connection waits for the next transfer, and how many it carries at once. */
  readonly connection?: SshMux.Settings
  /** The most characters a remote call returns (the destination's checksum list; default `TransferHost.defaultMaxOutput`). */
  readonly maxRemoteOutput?: number
}

/**
 * bbcp's tuning: parallel streams (`-s`), TCP window (`-w`), block size (`-B`), a checksum of
 * every block checked in flight (`-E alg`, or `-e` for md5), data ports (`-Z`) and reverse
 * connection (`-z`). The in-flight checksum catches transmission errors early; our SHA-256 of the
 * destination is checked after every copy whatever it is.
 */
export interface Tuning extends Pick<BbcpCommand.Options, "streams" | "window" | "blockSize" | "errorCheck" | "ports" | "reverse"> {
  readonly checksum?: BbcpCommand.ChecksumAlgorithm
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
      const candidates = binary.includes("/")
        ? [binary]
        : (process.env.PATH ?? "").split(":").filter((d) => d !== "").map((d) => path.join(d, binary))
      for (const c of candidates) {
        if (await fs.access(c, fs.constants.X_OK).then(() => true, () => false)) return c
      }
      throw new Error("not found")
    },
    catch: () => missing(binary)
  })

const specOf = (endpoint: TransferEndpoint.Endpoint, p: string): BbcpCommand.FileSpec =>
  endpoint._tag === "Local"
    ? { path: p }
    : { path: p, host: endpoint.host, ...(endpoint.user === undefined ? {} : { user: endpoint.user }) }

/** The resume folder beside a destination, shared with rsync's `--partial-dir`. */
export const partialDir = ".ccat-partial"

/** A file name short enough for NAME_MAX once `.bbcp` is added, still telling whose it is. */
const stagingName = (base: string): string =>
  base.length <= 200 ? `${base}.bbcp` : `${base.slice(0, 64)}-${createHash("sha256").update(base).digest("hex").slice(0, 16)}.bbcp`

/**
 * Where one transfer stages: `root` is the folder it owns (removed after success), `temp` the
 * incomplete copy bbcp writes, `checkpoints` bbcp's append signatures (`-a`).
 */
export const stagingOf = (destination: string) => {
  const dir = path.posix.dirname(destination)
  const partial = `${dir}/${partialDir}`
  const root = `${partial}/${stagingName(path.posix.basename(destination))}`
  return { dir, partial, root, temp: `${root}/part`, checkpoints: `${root}/ckp` }
}

/** bbcp refuses a rate below 1 KiB/s or above 1 GiB/s: a limit is kept within, never above what was asked unless below 1 KiB/s. */
const rateOf = (bytesPerSecond: number): number => Math.min(BbcpCommand.maxSize, Math.max(1024, Math.round(bytesPerSecond)))

/** A path the far shell reads as one word without quoting (bbcp's `-T` cannot quote). */
const plainWord = (p: string): boolean => /^\/[\w./+,:@=-]*$/.test(p)

/**
 * The words that make the staging folders ahead of bbcp on the far host. Another transfer into
 * the same folder removes `.ccat-partial` when it finds it empty, which can fall between
 * `mkdir -p` making it and making what is inside: the second try then succeeds.
 */
const stagingWords = (dirs: ReadonlyArray<string>): ReadonlyArray<string> => [
  ...["mkdir", "-p", "--", ...dirs, "2>/dev/null", "||"],
  ...["mkdir", "-p", "--", ...dirs, "&&", "exec"]
]

/**
 * The typed options and specs of one attempt (exported so the command can be logged and tested).
 * On a remote destination the staging folders are made by the ssh call that starts bbcp's
 * agent there (`stagedByAgent`), which saves a call; a path the far shell would need quoted
 * for gets its own call instead.
 */
export const plan = (request: TransferAdapter.Request, options: Options = {}) => {
  const staging = stagingOf(request.destination.path)
  const resume = request.resume ?? true
  const folders = [request.kind === "directory" ? staging.temp : staging.root, ...(resume ? [staging.checkpoints] : [])]
  const stagedByAgent = request.destination._tag === "Ssh" && folders.every(plainWord)
  const remote = (e: TransferEndpoint.Endpoint, before: ReadonlyArray<string> = []) =>
    e._tag === "Ssh" ? BbcpCommand.sshProgram(e, options.remoteBbcp ?? "bbcp", options.ssh, before) : undefined
  const source = remote(request.source)
  const target = remote(request.destination, stagedByAgent ? stagingWords(folders) : [])
  const { checksum, ...tuning } = options.tuning ?? {}
  const typed: BbcpCommand.Options = {
    ...tuning,
    ...(checksum === undefined ? {} : { checksum: { algorithm: checksum, mode: { _tag: "Compute" } } }),
    ...(resume ? { append: { checkpointDir: staging.checkpoints }, keep: true } : { force: true }),
    ...(request.kind === "directory" ? { recursive: true } : {}),
    ...(request.bandwidthLimit === undefined ? {} : { rateLimit: rateOf(request.bandwidthLimit) }),
    progressSeconds: options.progressSeconds ?? 2,
    verbose: true,
    ...(source === undefined ? {} : { sourceProgram: source }),
    ...(target === undefined ? {} : { targetProgram: target })
  }
  // a tree lands as <temp>/<basename of the source>
  const targetPath = request.kind === "directory" ? `${staging.temp}/` : staging.temp
  return {
    typed,
    sources: [specOf(request.source, request.source.path)],
    target: specOf(request.destination, targetPath),
    staging,
    folders,
    stagedByAgent
  }
}

const q = TransferProcess.shellQuote

const remoteOptions = (options: Options): TransferHost.RemoteOptions =>
  options.maxRemoteOutput === undefined ? {} : { maxOutput: options.maxRemoteOutput }

/** Creates the staging folders in a call of its own (see `stagingWords`). */
const prepareScript = (dirs: ReadonlyArray<string>): string => {
  const words = dirs.map(q).join(" ")
  return `mkdir -p -- ${words} 2>/dev/null || mkdir -p -- ${words}`
}

/**
 * Moves the staged copy to its final name (a rename for a file, per-file renames for a tree),
 * then removes the transfer's staging folder, and `.ccat-partial` if no other transfer uses it.
 */
const publishScript = (request: TransferAdapter.Request, staging: ReturnType<typeof stagingOf>): string => {
  const d = request.destination.path
  const tidy = [`rm -rf -- ${q(staging.root)}`, `rmdir -- ${q(staging.partial)} 2>/dev/null || true`]
  if (request.kind === "file") return ["set -e", `mv -f -- ${q(staging.temp)} ${q(d)}`, ...tidy].join("; ")
  const s = `${staging.temp}/${path.posix.basename(request.source.path)}`
  return [
    "set -e",
    `mkdir -p -- ${q(d)}`,
    `cd -- ${q(s)}`,
    `find . -type d -exec mkdir -p -- ${q(d)}/{} \\;`,
    `find . -type f -exec mv -f -- {} ${q(d)}/{} \\;`,
    "cd /",
    ...tidy
  ].join("; ")
}

const onHost = (endpoint: TransferEndpoint.Endpoint, script: string, ssh?: string) =>
  endpoint._tag === "Ssh"
    ? TransferHost.remote(name, endpoint, script, ssh).pipe(Effect.asVoid)
    : TransferProcess.run({ command: "sh", args: ["-c", script] }).pipe(
      Effect.mapError((e) => TransferError.make(name, "Unknown", e.message, { cause: e })),
      Effect.flatMap((o) =>
        o.exitCode === 0
          ? Effect.void
          : Effect.fail(
            TransferError.make(
              name,
              /Read-only|Permission denied/.test(o.stderr) ? "PermissionDenied" : /No space/.test(o.stderr) ? "DestinationFull" : "Unknown",
              o.stderr.trim() || "publishing the copy failed"
            )
          )
      )
    )

/**
 * The destination's manifest, read by the same ssh call that published the copy and handed to
 * the verification that follows, so a verified push costs one round trip less. One transfer
 * call owns one handoff; the manifest is taken once.
 */
export interface Handoff {
  /** The algorithm verification will use. */
  readonly algorithm: Checksum.Algorithm
  current?: { readonly path: string; readonly kind: TransferAdapter.Kind; readonly manifest: TransferAdapter.Manifest }
}

const marker = "--ccat-bbcp-manifest--"

/** Publishes, then prints the manifest after a marker and its exit status; a failed manifest leaves the publish's outcome alone. */
const publishAndManifestScript = (
  request: TransferAdapter.Request,
  staging: ReturnType<typeof stagingOf>,
  algorithm: Checksum.Algorithm
): string =>
  `( ${publishScript(request, staging)} ) || exit $?; echo ${marker}; ( ${
    TransferHost.manifestScript(request.destination.path, request.kind, algorithm)
  } ); echo "${marker}$?"`

/** The manifest a publish-and-manifest call printed, when its manifest part succeeded. */
const handedManifest = (
  stdout: string,
  kind: TransferAdapter.Kind,
  algorithm: Checksum.Algorithm
): TransferAdapter.Manifest | undefined => {
  const start = stdout.indexOf(`${marker}\n`)
  const end = stdout.lastIndexOf(`${marker}0`)
  return start === -1 || end < start
    ? undefined
    : TransferHost.parseRemoteManifest(stdout.slice(start + marker.length + 1, end), algorithm, kind)
}

const publish = (
  request: TransferAdapter.Request,
  staging: ReturnType<typeof stagingOf>,
  options: Options,
  handoff: Handoff | undefined
) => {
  const d = request.destination
  if (handoff === undefined || d._tag !== "Ssh") return onHost(d, publishScript(request, staging), options.ssh)
  return TransferHost.remote(name, d, publishAndManifestScript(request, staging, handoff.algorithm), options.ssh, remoteOptions(options))
    .pipe(
      Effect.map((stdout) => {
        const manifest = handedManifest(stdout, request.kind, handoff.algorithm)
        if (manifest !== undefined) handoff.current = { path: d.path, kind: request.kind, manifest }
      })
    )
}

/** The manifest a handoff holds for this endpoint, taken out of it. */
const takeHanded = (
  handoff: Handoff | undefined,
  endpoint: TransferEndpoint.Endpoint,
  kind: TransferAdapter.Kind,
  algorithm: Checksum.Algorithm
) => {
  const c = handoff?.current
  if (
    handoff === undefined || c === undefined || endpoint._tag !== "Ssh" || c.path !== endpoint.path || c.kind !== kind ||
    handoff.algorithm !== algorithm
  ) return undefined
  handoff.current = undefined
  return c.manifest
}

/**
 * The minimal bbcp adapter (size, copy, manifest, remove), for composing or wrapping. With a
 * handoff, a push's publish reads the destination's manifest too, for the verification after it.
 */
export const minimal = (options: Options = {}, handoff?: Handoff): TransferAdapter.Minimal => ({
  name,
  capabilities: { resume: true, remote: true, directories: true, bandwidthLimit: true },
  size: (endpoint, kind) => TransferHost.size(name, endpoint, kind, options.ssh, remoteOptions(options)),
  manifest: (endpoint, kind, algorithm) => {
    const handed = takeHanded(handoff, endpoint, kind, algorithm)
    return handed === undefined
      ? TransferHost.manifest(name, endpoint, kind, algorithm, options.ssh, remoteOptions(options))
      : Effect.succeed(handed)
  },
  remove: (endpoint) => TransferHost.remove(name, endpoint, options.ssh),
  copy: Effect.fn("BbcpTransfer.copy")(function* (request, report) {
    if (handoff !== undefined) handoff.current = undefined
    const p = yield* Effect.try({
      try: () => plan(request, options),
      catch: (e) => TransferError.make(name, "InvalidRequest", e instanceof Error ? e.message : String(e))
    })
    const argv = yield* Effect.try({
      try: () => BbcpCommand.args(p.typed, p.sources, p.target),
      catch: (e) => TransferError.make(name, "InvalidRequest", e instanceof Error ? e.message : String(e))
    })
    // the exact command, for an operator comparing a route's tuning with what ran
    yield* Effect.logDebug("bbcp command").pipe(Effect.annotateLogs("command", BbcpCommand.toShell([options.bbcp ?? "bbcp", ...argv])))
    const binary = yield* findBinary(options.bbcp)
    if (request.destination._tag === "Local") {
      yield* Effect.forEach(p.folders, (f) => TransferHost.mkdirp(name, request.destination, f), { discard: true })
    } else if (!p.stagedByAgent) yield* onHost(request.destination, prepareScript(p.folders), options.ssh)
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
        if (l._tag === "Progress" && request.kind === "file" && l.percent !== undefined) {
          bytes = Math.round((l.percent * request.totalBytes) / 100)
        }
        if (l._tag === "FileCreated") bytes = done += l.bytes
        if (bytes === undefined) return
        const key = `${bytes}`
        if (key === lastKey) return // -P 1 repeats identical lines
        lastKey = key
        Runtime.runFork(runtime)(report(TransferAdapter.progressOf(bytes, request.totalBytes, Date.now() - started)))
      }
    }).pipe(Effect.mapError((e) => (e.missing ? missing(binary) : TransferError.make(name, "Unknown", e.message, { cause: e }))))
    if (outcome.exitCode !== 0) {
      // the core measured the source before this attempt: a source path missing now vanished
      const f = BbcpOutput.classify(outcome.exitCode, outcome.signal, outcome.stderr, { sources: [request.source.path] })
      return yield* Effect.fail(
        TransferError.make(name, f.reason, f.detail, {
          ...(f.retryable === undefined ? {} : { retryable: f.retryable }),
          ...(outcome.exitCode === null ? {} : { exitCode: outcome.exitCode })
        })
      )
    }
    yield* publish(request, p.staging, options, handoff)
    const parsed = BbcpOutput.parse(outcome.stderr)
    return {
      bytesSent: parsed.files.reduce((n, f) => n + f.bytes, 0),
      resumedBytes: parsed.appended.reduce((n, a) => n + a.offset, 0)
    }
  })
})

/**
 * The request with its remote endpoint reached through the route's shared ssh connection for the
 * scope. Both ends remote is refused by the core's check, so that request is left as it is.
 */
const sharing = (request: TransferAdapter.Request, options: Options) => {
  const { source, destination } = request
  if (options.shareConnection === false || (source._tag === "Ssh" && destination._tag === "Ssh")) return Effect.succeed(request)
  if (destination._tag === "Ssh") {
    return Effect.map(
      SshMux.shared(destination, options.ssh, options.connection, name),
      (d): TransferAdapter.Request => ({ ...request, destination: d })
    )
  }
  if (source._tag === "Ssh") {
    return Effect.map(SshMux.shared(source, options.ssh, options.connection, name), (s): TransferAdapter.Request => ({
      ...request,
      source: s
    }))
  }
  return Effect.succeed(request)
}

/**
 * The full bbcp adapter: the core's verification, deadline and retries around `minimal`. Each
 * call rides the route's shared ssh connection (kept for the route's next transfer), and a
 * verified push reads the destination's checksums in the call that publishes the copy.
 */
export const make = (options: Options = {}): TransferAdapter.Service => {
  const plain = TransferAdapter.make(minimal(options), options)
  const forCall = (request: TransferAdapter.Request, call: TransferAdapter.CallOptions = {}) =>
    (call.verify ?? options.verify ?? true)
      ? TransferAdapter.make(minimal(options, { algorithm: request.algorithm ?? Checksum.defaultAlgorithm }), options)
      : plain
  return {
    ...plain,
    stream: (request, call) => Stream.unwrapScoped(Effect.map(sharing(request, options), (r) => forCall(r, call).stream(r, call))),
    transfer: (request, call) => Effect.scoped(Effect.flatMap(sharing(request, options), (r) => forCall(r, call).transfer(r, call))),
    verify: (request) => Effect.scoped(Effect.flatMap(sharing(request, options), plain.verify))
  }
}

/** Provides the generic TransferAdapter tag with the bbcp adapter. */
export const layer = (options: Options = {}): Layer.Layer<TransferAdapter.TransferAdapter> =>
  Layer.succeed(TransferAdapter.TransferAdapter, make(options))
