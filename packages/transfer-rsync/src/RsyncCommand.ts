/**
 * The rsync command line, and what rsync prints and exits with, as pure functions: the adapter
 * is a thin shell around them, and they are tested on real rsync output.
 */
import type { TransferAdapter, TransferEndpoint, TransferError } from "@ccat/core"
import { TransferHost } from "@ccat/core/node"

/** Options that shape the rsync command line. */
export interface CommandOptions {
  /** The ssh binary rsync runs for remote endpoints (default `ssh`). */
  readonly ssh?: string
  /** rsync on the remote host when not on its PATH (`--rsync-path`). */
  readonly remoteRsync?: string
  /**
   * Seconds without any data before rsync gives up (`--timeout`, default 300): a stalled link
   * fails fast as a retryable Timeout; the whole transfer's size-scaled deadline is the core's.
   */
  readonly ioTimeoutSeconds?: number
  /** Directory, relative to each destination file's directory, where partial files wait for a resume. */
  readonly partialDir?: string
  /** Compress on the wire (`-z`): worth it only for compressible data on a slow link. */
  readonly compress?: boolean
  /** Anything else, appended before the paths. */
  readonly extraArgs?: ReadonlyArray<string>
}

/** Where partial files wait for a resume, next to their final name. */
export const defaultPartialDir = ".ccat-partial"

const spec = (endpoint: TransferEndpoint.Endpoint, trailingSlash: boolean): string => {
  const p = trailingSlash ? `${endpoint.path}/` : endpoint.path
  return endpoint._tag === "Local" ? p : `${endpoint.host}:${p}`
}

/**
 * The argv (without the binary) for one transfer. A directory is copied as its contents
 * (`src/` into `dst`); `--mkpath` creates missing parents; `--partial-dir` keeps an interrupted
 * file out of its final name and hands it to the next attempt as the basis of a delta.
 */
export const args = (request: TransferAdapter.Request, options: CommandOptions = {}): Array<string> => {
  const remote = request.source._tag === "Ssh" ? request.source : request.destination._tag === "Ssh" ? request.destination : undefined
  const resume = request.resume ?? true
  return [
    "-rlt",
    "--mkpath",
    "--no-inc-recursive",
    "--info=progress2",
    "--stats",
    `--timeout=${options.ioTimeoutSeconds ?? 300}`,
    ...(resume ? [`--partial-dir=${options.partialDir ?? defaultPartialDir}`] : []),
    // a resume on the same host needs the delta algorithm rsync switches off locally
    ...(resume && remote === undefined ? ["--no-whole-file"] : []),
    ...(request.bandwidthLimit === undefined ? [] : [`--bwlimit=${Math.max(1, Math.round(request.bandwidthLimit / 1024))}`]),
    ...(options.compress === true ? ["-z"] : []),
    ...(remote === undefined ? [] : ["-e", TransferHost.sshCommand(remote, options.ssh)]),
    ...(remote !== undefined && options.remoteRsync !== undefined ? [`--rsync-path=${options.remoteRsync}`] : []),
    ...(options.extraArgs ?? []),
    "--",
    spec(request.source, request.kind === "directory"),
    spec(request.destination, false)
  ]
}

const units: Record<string, number> = { "": 1, k: 1024, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }

/** One `--info=progress2` line: total bytes so far, percent, current rate in bytes per second. */
export const parseProgress = (line: string): { readonly bytes: number; readonly percent: number; readonly rate: number } | undefined => {
  const m = /^\s*([\d,]+)\s+(\d+)%\s+([\d.]+)([kKMGT]?)B\/s\s+\d+:\d\d:\d\d/.exec(line)
  if (m === null) return undefined
  return { bytes: Number(m[1]!.replace(/,/g, "")), percent: Number(m[2]), rate: Number(m[3]) * units[m[4]!]! }
}

/** The figures of `--stats` the result needs: data sent as literal bytes, and reused (matched) bytes. */
export const parseStats = (stdout: string): { readonly literal?: number; readonly matched?: number; readonly totalSize?: number } => {
  const num = (label: string) => {
    const m = new RegExp(`^${label}: ([\\d,]+)`, "m").exec(stdout)
    return m === null ? undefined : Number(m[1]!.replace(/,/g, ""))
  }
  const literal = num("Literal data")
  const matched = num("Matched data")
  const totalSize = num("Total file size")
  return {
    ...(literal === undefined ? {} : { literal }),
    ...(matched === undefined ? {} : { matched }),
    ...(totalSize === undefined ? {} : { totalSize })
  }
}

/** What the documented exit codes mean when stderr says nothing more specific. */
export const exitReasons: Record<number, TransferError.Reason> = {
  1: "InvalidRequest",
  2: "Protocol",
  3: "InvalidRequest",
  4: "InvalidRequest",
  5: "Connection",
  6: "Unknown",
  10: "Connection",
  11: "Partial",
  12: "Protocol",
  13: "Protocol",
  14: "Protocol",
  20: "Interrupted",
  21: "Unknown",
  22: "Unknown",
  23: "Partial",
  24: "SourceVanished",
  25: "Unknown",
  30: "Timeout",
  35: "Timeout",
  127: "ToolMissing",
  255: "Connection"
}

/**
 * Classifies a failed rsync run. stderr is read first, since rsync reports a missing source, a
 * full disk and a read-only target all as codes 11 or 23; the code decides the rest (retryable:
 * timeouts, socket and protocol errors, partial transfers; not: bad options, missing source,
 * permission, incompatible protocol versions).
 */
export const classify = (
  exitCode: number | null,
  signal: string | null,
  stderr: string
): { readonly reason: TransferError.Reason; readonly retryable?: boolean; readonly detail: string } => {
  const lines = stderr.split(/\r?\n/).filter((l) => l.trim() !== "")
  const line = (re: RegExp) => lines.find((l) => re.test(l))
  const ssh = TransferHost.classifySsh(stderr)
  if (ssh !== undefined && ssh.reason !== "Connection") return { reason: ssh.reason, detail: ssh.line }
  const full = line(/No space left on device|Disk quota exceeded/)
  if (full !== undefined) return { reason: "DestinationFull", detail: full }
  const denied = line(/Read-only file system \(30\)|Permission denied \(13\)|Operation not permitted \(1\)/)
  if (denied !== undefined) return { reason: "PermissionDenied", detail: denied }
  const missing = line(/(link_stat|change_dir) .* failed: No such file or directory/)
  if (missing !== undefined) return { reason: "SourceNotFound", detail: missing }
  const vanished = line(/file has vanished/)
  if (exitCode === 24 || vanished !== undefined) return { reason: "SourceVanished", detail: vanished ?? "some source files vanished" }
  if (ssh !== undefined) return { reason: ssh.reason, detail: ssh.line }
  const last = lines.filter((l) => !/^rsync error:/.test(l)).slice(-2).join(" / ") || lines.slice(-1).join("")
  if (exitCode === null) return { reason: "Interrupted", detail: `rsync ended by ${signal ?? "a signal"}` }
  if (exitCode === 2) return { reason: "Protocol", retryable: false, detail: last || "incompatible rsync protocol versions" }
  return { reason: exitReasons[exitCode] ?? "Unknown", detail: last || `rsync exited with ${exitCode}` }
}
