/**
 * What every adapter does to an endpoint besides copying: measure it, checksum every file in it,
 * remove it, create its parent. Locally through the file system, remotely through one ssh call
 * per operation (the round trip to Chile is 200-500 ms, so never one call per file). Remote
 * checksums use `openssl dgst`, which hashes about 3x faster than coreutils' sha256sum here.
 */
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Checksum from "../Checksum.js"
import type * as TransferAdapter from "../TransferAdapter.js"
import type * as TransferEndpoint from "../TransferEndpoint.js"
import * as TransferError from "../TransferError.js"
import * as TransferProcess from "./TransferProcess.js"

/** ssh options every call gets: never prompt, and notice a dead link within about a minute. */
export const defaultSshOptions: ReadonlyArray<string> = [
  "BatchMode=yes",
  "ConnectTimeout=30",
  "ServerAliveInterval=15",
  "ServerAliveCountMax=4"
]

/** The ssh arguments (before the host) that reach an endpoint. */
export const sshArgs = (endpoint: TransferEndpoint.Ssh): Array<string> => [
  ...[...defaultSshOptions, ...(endpoint.sshOptions ?? [])].flatMap((o) => ["-o", o]),
  ...(endpoint.port === undefined ? [] : ["-p", String(endpoint.port)]),
  ...(endpoint.identityFile === undefined ? [] : ["-i", endpoint.identityFile]),
  ...(endpoint.user === undefined ? [] : ["-l", endpoint.user])
]

/** The remote-shell command line for tools that take one string (`rsync -e`), quoted for them. */
export const sshCommand = (endpoint: TransferEndpoint.Ssh, ssh = "ssh"): string =>
  [ssh, ...sshArgs(endpoint)].map(TransferProcess.shellQuote).join(" ")

/**
 * Classifies what ssh (or the remote shell) printed when it failed; undefined when the text is
 * not an ssh failure. A refused key is not retryable; an unreachable host on a lossy link is.
 */
export const classifySsh = (stderr: string): { readonly reason: TransferError.Reason; readonly line: string } | undefined => {
  const lines = stderr.split(/\r?\n/)
  const find = (re: RegExp) => lines.find((l) => re.test(l))
  const auth = find(/Permission denied \(|Host key verification failed|Too many authentication failures/)
  if (auth !== undefined) return { reason: "AuthenticationFailed", line: auth }
  const missing = find(/command not found|: No such file or directory$/)
  if (missing !== undefined && /^(bash|sh|zsh|ksh|dash)(: line \d+)?:/.test(missing)) return { reason: "ToolMissing", line: missing }
  const conn = find(
    /Could not resolve hostname|Connection refused|Connection timed out|No route to host|Network is unreachable|Connection reset|Connection closed by|Broken pipe|Timeout, server .* not responding|kex_exchange_identification|connection unexpectedly closed/
  )
  if (conn !== undefined) return { reason: "Connection", line: conn }
  return undefined
}

/** Maps a Node file-system error to a transfer reason. */
export const reasonOfErrno = (cause: unknown, side: "source" | "destination"): TransferError.Reason => {
  switch ((cause as { code?: string } | undefined)?.code) {
    case "ENOENT":
      return side === "source" ? "SourceNotFound" : "InvalidRequest"
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return "PermissionDenied"
    case "ENOSPC":
    case "EDQUOT":
      return "DestinationFull"
    case "ETIMEDOUT":
      return "Timeout"
    case "EIO":
      return "Partial"
    default:
      return "Unknown"
  }
}

const errnoError = (adapter: string, cause: unknown, side: "source" | "destination") =>
  TransferError.make(adapter, reasonOfErrno(cause, side), cause instanceof Error ? cause.message : String(cause), { cause })

/** The most a remote call returns unless its caller says otherwise: 64 Mi characters, a checksum list of about 300,000 files. */
export const defaultMaxOutput = 64 * 1024 * 1024

/** How much a remote call may return. */
export interface RemoteOptions {
  /**
   * The most characters of standard output the call returns whole (default `defaultMaxOutput`).
   * A command that prints more fails the call with `InvalidRequest` naming the limit: its output
   * is never cut, since a cut checksum list would read as missing files.
   */
  readonly maxOutput?: number
}

/**
 * Runs a shell script on the endpoint's host and returns its whole standard output, at most
 * `options.maxOutput` characters; exit 3 means "the path does not exist".
 */
export const remote = (adapter: string, endpoint: TransferEndpoint.Ssh, script: string, ssh = "ssh", options: RemoteOptions = {}) => {
  const maxOutput = options.maxOutput ?? defaultMaxOutput
  if (!Number.isSafeInteger(maxOutput) || maxOutput < 0) {
    return Effect.fail(TransferError.make(adapter, "InvalidRequest", `maxOutput must be a whole number of characters, got ${maxOutput}`))
  }
  // one character more than allowed is kept, so output over the limit shows as such instead of as a cut tail
  return TransferProcess.run({ command: ssh, args: [...sshArgs(endpoint), endpoint.host, script], keep: maxOutput + 1 }).pipe(
    Effect.mapError((e) => TransferError.make(adapter, e.missing ? "ToolMissing" : "Unknown", e.message, { cause: e })),
    Effect.flatMap((o) => {
      if (o.exitCode === 0 && o.stdout.length > maxOutput) {
        return Effect.fail(
          TransferError.make(
            adapter,
            "InvalidRequest",
            `${
              TransferEndpoint_format(endpoint)
            }: the remote command printed more than ${maxOutput} characters, the most this call takes (maxOutput)`
          )
        )
      }
      if (o.exitCode === 0) return Effect.succeed(o.stdout)
      if (o.exitCode === 4) {
        return Effect.fail(
          TransferError.make(
            adapter,
            "InvalidRequest",
            `${TransferEndpoint_format(endpoint)}: not the kind of entry the request names (file or directory)`,
            { exitCode: 4 }
          )
        )
      }
      if (o.exitCode === 3) {
        return Effect.fail(
          TransferError.make(adapter, "SourceNotFound", `${TransferEndpoint_format(endpoint)}: no such file or directory`, { exitCode: 3 })
        )
      }
      const ssh = classifySsh(o.stderr)
      if (ssh !== undefined) return Effect.fail(TransferError.make(adapter, ssh.reason, ssh.line, { exitCode: o.exitCode ?? undefined }))
      const detail = o.stderr.trim().split("\n").slice(-3).join(" / ") || `remote command failed (${o.signal ?? o.exitCode})`
      const reason: TransferError.Reason = /Permission denied|Read-only file system/.test(o.stderr)
        ? "PermissionDenied"
        : /No space left/.test(o.stderr)
        ? "DestinationFull"
        : o.signal !== null
        ? "Interrupted"
        : "Unknown"
      return Effect.fail(TransferError.make(adapter, reason, detail, { exitCode: o.exitCode ?? undefined }))
    })
  )
}

const TransferEndpoint_format = (e: TransferEndpoint.Ssh) => `${e.host}:${e.path}`
const q = TransferProcess.shellQuote

/** Regular files under a local path (the path itself for a file), relative with `/`. */
export const walk = async (root: string): Promise<Array<{ readonly rel: string; readonly size: number }>> => {
  const st = await fs.stat(root)
  if (!st.isDirectory()) return [{ rel: ".", size: st.size }]
  const out: Array<{ rel: string; size: number }> = []
  const visit = async (dir: string, prefix: string): Promise<void> => {
    for (const d of await fs.readdir(dir, { withFileTypes: true })) {
      const rel = prefix === "" ? d.name : `${prefix}/${d.name}`
      if (d.isDirectory()) await visit(path.join(dir, d.name), rel)
      else if (d.isFile()) out.push({ rel, size: (await fs.stat(path.join(dir, d.name))).size })
    }
  }
  await visit(root, "")
  return out
}

/**
 * Total bytes and file count at an endpoint; a missing endpoint fails with `SourceNotFound`.
 * Remotely it reads one line per file, within `options.maxOutput`.
 */
export const size = (
  adapter: string,
  endpoint: TransferEndpoint.Endpoint,
  kind: TransferAdapter.Kind,
  ssh = "ssh",
  options: RemoteOptions = {}
) =>
  (endpoint._tag === "Local"
    ? Effect.tryPromise({ try: () => walk(endpoint.path), catch: (e) => errnoError(adapter, e, "source") }).pipe(
      Effect.filterOrFail(
        (files) => (files.length === 1 && files[0]!.rel === ".") === (kind === "file"),
        () => TransferError.make(adapter, "InvalidRequest", `${endpoint.path} is not a ${kind}`)
      ),
      Effect.map((files) => ({ bytes: files.reduce((n, f) => n + f.size, 0), files: files.length }))
    )
    : remote(
      adapter,
      endpoint,
      `test -e ${q(endpoint.path)} || exit 3; test ${kind === "directory" ? "-d" : "-f"} ${q(endpoint.path)} || exit 4; find ${
        q(endpoint.path)
      } -type f -printf '%s\\n'`,
      ssh,
      options
    ).pipe(
      Effect.map((out) => {
        const sizes = out.split("\n").filter((l) => l !== "").map(Number)
        return { bytes: sizes.reduce((n, s) => n + s, 0), files: sizes.length }
      })
    )).pipe(Effect.withSpan("TransferHost.size", { attributes: { path: endpoint.path } }))

const hashLocal = (file: string, algorithm: Checksum.Algorithm) =>
  new Promise<Checksum.Checksum>((resolve, reject) => {
    const hash = createHash(Checksum.nodeHashName[algorithm])
    createReadStream(file, { highWaterMark: 1024 * 1024 })
      .on("data", (c) => hash.update(c as Buffer))
      .on("error", reject)
      .on("end", () => resolve(Checksum.make(algorithm, hash.digest("hex"))))
  })

/** Parses the output of the remote manifest script: `S size rel` lines, then `hex *./rel` lines. */
export const parseRemoteManifest = (out: string, algorithm: Checksum.Algorithm, kind: TransferAdapter.Kind): TransferAdapter.Manifest => {
  const sizes = new Map<string, number>()
  const manifest: Record<string, TransferAdapter.Entry> = {}
  for (const line of out.split("\n")) {
    const s = /^S (\d+) (.*)$/.exec(line)
    if (s !== null) {
      sizes.set(kind === "file" ? "." : s[2]!, Number(s[1]))
      continue
    }
    const h = /^([0-9a-f]+) \*(.*)$/.exec(line)
    if (h === null) continue
    const rel = kind === "file" ? "." : h[2]!.replace(/^\.\//, "")
    manifest[rel] = { size: sizes.get(rel) ?? -1, checksum: Checksum.make(algorithm, h[1]!) }
  }
  return manifest
}

/**
 * The remote shell script printing the manifest of a path (what `parseRemoteManifest` reads);
 * it exits 3 when the path is missing. Exported so an adapter can run it in the same ssh call as
 * other work at the far end.
 */
export const manifestScript = (p: string, kind: TransferAdapter.Kind, algorithm: Checksum.Algorithm): string =>
  kind === "file"
    ? `test -f ${q(p)} || exit 3; stat -c 'S %s .' -- ${q(p)} && openssl dgst -${algorithm} -r -- ${q(p)}`
    : `cd -- ${
      q(p)
    } 2>/dev/null || exit 3; find . -type f -printf 'S %s %P\\n' && find . -type f -print0 | xargs -0 -r openssl dgst -${algorithm} -r`

/** Checksums of every regular file at an endpoint; remotely the whole list, within `options.maxOutput`. */
export const manifest = (
  adapter: string,
  endpoint: TransferEndpoint.Endpoint,
  kind: TransferAdapter.Kind,
  algorithm: Checksum.Algorithm,
  ssh = "ssh",
  options: RemoteOptions = {}
) =>
  (endpoint._tag === "Local"
    ? Effect.tryPromise({
      try: async () => {
        const files = await walk(endpoint.path)
        const result: Record<string, TransferAdapter.Entry> = {}
        const queue = [...files]
        const worker = async () => {
          for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
            const file = f.rel === "." ? endpoint.path : path.join(endpoint.path, f.rel)
            result[f.rel] = { size: f.size, checksum: await hashLocal(file, algorithm) }
          }
        }
        await Promise.all(Array.from({ length: Math.min(4, files.length) }, worker))
        return result as TransferAdapter.Manifest
      },
      catch: (e) => errnoError(adapter, e, "source")
    })
    : remote(
      adapter,
      endpoint,
      manifestScript(endpoint.path, kind, algorithm),
      ssh,
      options
    ).pipe(Effect.map((out) => parseRemoteManifest(out, algorithm, kind)))).pipe(
      Effect.withSpan("TransferHost.manifest", { attributes: { path: endpoint.path } })
    )

/** Removes a file or tree at an endpoint; removing what is not there succeeds. */
export const remove = (adapter: string, endpoint: TransferEndpoint.Endpoint, ssh = "ssh") =>
  (endpoint._tag === "Local"
    ? Effect.tryPromise({
      try: () => fs.rm(endpoint.path, { recursive: true, force: true }),
      catch: (e) => errnoError(adapter, e, "destination")
    })
    : remote(adapter, endpoint, `rm -rf -- ${q(endpoint.path)}`, ssh).pipe(Effect.asVoid)).pipe(
      Effect.withSpan("TransferHost.remove", { attributes: { path: endpoint.path } })
    )

/**
 * Creates a local directory and its parents. Node's recursive mkdir reports ENOENT when the file
 * system is read-only or the parent is not writable, which would read as a bad request; on any
 * failure the folders are made again one by one, so the error is the real one (EROFS, EACCES).
 */
const mkdirLocal = async (dir: string): Promise<void> => {
  try {
    await fs.mkdir(dir, { recursive: true })
  } catch (first) {
    const chain: Array<string> = []
    for (let d = path.resolve(dir); chain[0] !== d; d = path.dirname(d)) chain.unshift(d)
    for (const d of chain) {
      await fs.mkdir(d).catch((e: { code?: string }) => {
        if (e.code !== "EEXIST") throw e
      })
    }
    const made = await fs.stat(dir).then((s) => s.isDirectory(), () => false)
    if (!made) throw first
  }
}

/** Creates a directory and its parents at an endpoint. */
export const mkdirp = (adapter: string, endpoint: TransferEndpoint.Endpoint, dir: string, ssh = "ssh") =>
  (endpoint._tag === "Local"
    ? Effect.tryPromise({ try: () => mkdirLocal(dir), catch: (e) => errnoError(adapter, e, "destination") })
    : remote(adapter, endpoint, `mkdir -p -- ${q(dir)}`, ssh)).pipe(
      Effect.asVoid,
      Effect.withSpan("TransferHost.mkdirp", { attributes: { path: dir } })
    )
