/**
 * What bbcp prints (all of it on stderr: progress, per-file, summary, checksum and error lines)
 * and what its exit codes mean. Formats and quirks are those of the recorded runs in
 * ../shared/fixtures/bbcp/ (bbcp 14.04.14.00.1): rates are 1024-based, `-P 1` repeats the same
 * progress line dozens of times a second, `-e` with `-E a32=`/`c32=` prints wrong values, a
 * killed run exits 143, a checksum mismatch exits 172 and removes the target.
 */
import type { TransferError } from "@ccat/core"
import { TransferHost } from "@ccat/core/node"

/** One line of bbcp's stderr, classified. */
export type Line =
  | {
    readonly _tag: "Progress"
    readonly stamp: string
    readonly percent: number | undefined
    readonly rate: number
    readonly average: number
  }
  | { readonly _tag: "Creating"; readonly path: string }
  | { readonly _tag: "Appending"; readonly path: string; readonly offset: number }
  | { readonly _tag: "FileCreated"; readonly path: string; readonly bytes: number; readonly rate: number }
  | { readonly _tag: "Summary"; readonly files: number; readonly rate: number }
  | { readonly _tag: "Indexing" }
  | { readonly _tag: "Copying"; readonly files: number; readonly directories: number }
  | {
    readonly _tag: "Checksum"
    readonly algorithm: "md5" | "a32" | "c32"
    readonly hex: string
    readonly host: string
    readonly path: string
  }
  | { readonly _tag: "WillComplete"; readonly path: string }
  | { readonly _tag: "AlreadyCopied"; readonly path: string }
  | { readonly _tag: "Statistics"; readonly text: string }
  | { readonly _tag: "Error"; readonly text: string }
  | { readonly _tag: "Foreign"; readonly text: string }
  | { readonly _tag: "Blank" }

const unit: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }

/** A bbcp rate (`10.0 MB/s`, 1024-based despite the labels) in bytes per second. */
export const rate = (value: string, label: string): number => Number(value) * (unit[label] ?? 1)

const R = String.raw`([\d.]+) ([KMGT]?B)/s`
const patterns: ReadonlyArray<readonly [RegExp, (m: RegExpExecArray) => Line]> = [
  [
    new RegExp(String.raw`^bbcp: (\d{6} \d\d:\d\d:\d\d)  (\d+%|not) done; ${R}(?:, avg ${R})?$`),
    (m) => {
      const current = rate(m[3]!, m[4]!)
      return {
        _tag: "Progress",
        stamp: m[1]!,
        percent: m[2] === "not" ? undefined : Number(m[2]!.slice(0, -1)),
        rate: current,
        average: m[5] === undefined ? current : rate(m[5], m[6]!)
      }
    }
  ],
  [/^bbcp: Creating (.+)$/, (m) => ({ _tag: "Creating", path: m[1]! })],
  [/^bbcp: Appending to (.+) at offset (\d+)$/, (m) => ({ _tag: "Appending", path: m[1]!, offset: Number(m[2]) })],
  [
    new RegExp(String.raw`^File (.+) created; (\d+) bytes at ${R}$`),
    (m) => ({ _tag: "FileCreated", path: m[1]!, bytes: Number(m[2]), rate: rate(m[3]!, m[4]!) })
  ],
  [
    new RegExp(String.raw`^(\d+) files? copied at effectively ${R}$`),
    (m) => ({ _tag: "Summary", files: Number(m[1]), rate: rate(m[2]!, m[3]!) })
  ],
  [/^bbcp: Indexing files to be copied\.\.\.$/, () => ({ _tag: "Indexing" })],
  [
    /^bbcp: Copying (\d+) files? in (\d+) director(?:y|ies)\.$/,
    (m) => ({ _tag: "Copying", files: Number(m[1]), directories: Number(m[2]) })
  ],
  [
    /^Checksum: (md5|a32|c32) ([0-9a-fA-F]+) ([^\s:]+):(.+)$/,
    (m) => ({ _tag: "Checksum", algorithm: m[1] as "md5" | "a32" | "c32", hex: m[2]!.toLowerCase(), host: m[3]!, path: m[4]! })
  ],
  [/^bbcp: Will try to complete copying (.+)$/, (m) => ({ _tag: "WillComplete", path: m[1]! })],
  [/^bbcp: File (.+) appears to have already been copied; copy skipped\.$/, (m) => ({ _tag: "AlreadyCopied", path: m[1]! })],
  [
    /^(?:(?:Source|Target) \S+ using (?:initial|a final) (?:send|recv) window of \d+|(?:Source|Target) cpu=.*|\d+ buffers used with \d+ reorders; peaking at \d+\.)$/,
    (m) => ({ _tag: "Statistics", text: m[0] })
  ],
  [/^bbcp: (.*)$/, (m) => ({ _tag: "Error", text: m[1]! })]
]

/** Classifies one stderr line. Anything bbcp did not write itself (ssh, the remote shell) is `Foreign`. */
export const parseLine = (line: string): Line => {
  if (line.trim() === "") return { _tag: "Blank" }
  for (const [re, make] of patterns) {
    const m = re.exec(line)
    if (m !== null) return make(m)
  }
  return { _tag: "Foreign", text: line }
}

/** How the command was run, which decides whether printed checksums can be trusted. */
export interface Context {
  readonly errorCheck?: boolean
}

/** A checksum line, with its value normalised and a flag for bbcp's known wrong values. */
export interface ChecksumReport {
  readonly algorithm: "md5" | "a32" | "c32"
  /** As printed. */
  readonly hex: string
  /** md5: 32 digits; a32 and c32: the 8-digit value (a32 is printed padded to 16 with zeros). */
  readonly value: string
  readonly host: string
  readonly path: string
  /** False for a32/c32 printed under `-e`: bbcp finalises them twice (fixtures 10 and 13). */
  readonly trusted: boolean
}

/** Everything a run printed, gathered. */
export interface Report {
  readonly lines: ReadonlyArray<Line>
  /** Progress lines that moved the percent on (bbcp's `-P 1` repeats removed). */
  readonly progress: ReadonlyArray<Extract<Line, { _tag: "Progress" }>>
  readonly files: ReadonlyArray<Extract<Line, { _tag: "FileCreated" }>>
  readonly summary: Extract<Line, { _tag: "Summary" }> | undefined
  readonly checksums: ReadonlyArray<ChecksumReport>
  readonly appended: ReadonlyArray<Extract<Line, { _tag: "Appending" }>>
  readonly alreadyCopied: ReadonlyArray<string>
  readonly errors: ReadonlyArray<string>
  readonly foreign: ReadonlyArray<string>
}

/** Parses a whole stderr text. */
export const parse = (stderr: string, context: Context = {}): Report => {
  const lines = stderr.split(/\r?\n/).map(parseLine)
  const progress: Array<Extract<Line, { _tag: "Progress" }>> = []
  for (const l of lines) {
    if (l._tag !== "Progress") continue
    const prev = progress[progress.length - 1]
    // -P 1 repeats a line dozens of times and re-stamps it across a second boundary: a line
    // that does not move the percent on adds nothing
    if (prev !== undefined && prev.percent === l.percent && (l.percent !== undefined || prev.stamp === l.stamp)) continue
    progress.push(l)
  }
  const of = <T extends Line["_tag"]>(tag: T) => lines.filter((l): l is Extract<Line, { _tag: T }> => l._tag === tag)
  return {
    lines,
    progress,
    files: of("FileCreated"),
    summary: of("Summary")[0],
    checksums: of("Checksum").map((c) => ({
      algorithm: c.algorithm,
      hex: c.hex,
      value: c.algorithm === "a32" && c.hex.length === 16 && c.hex.endsWith("00000000") ? c.hex.slice(0, 8) : c.hex,
      host: c.host,
      path: c.path,
      trusted: !(context.errorCheck === true && c.algorithm !== "md5")
    })),
    appended: of("Appending"),
    alreadyCopied: of("AlreadyCopied").map((l) => l.path),
    errors: of("Error").map((l) => l.text),
    foreign: of("Foreign").map((l) => l.text)
  }
}

/** A failed run, classified. */
export interface Failure {
  readonly reason: TransferError.Reason
  readonly retryable?: boolean
  readonly detail: string
}

/** What the caller knows of the run, which bbcp's words alone cannot tell. */
export interface Situation {
  /**
   * The source paths (on their host), known to have existed when the run began: a "No such file
   * or directory" naming one of them, or a path below one, means the source vanished mid-run.
   */
  readonly sources?: ReadonlyArray<string>
}

const noSuchFile = /^No such file or directory \S.* (\/\S*)$/

const below = (p: string, roots: ReadonlyArray<string>) =>
  roots.some((r) => {
    const root = r.replace(/\/+$/, "")
    return p === root || p.startsWith(`${root}/`)
  })

/** The reason bbcp's error text names (bbcp prints strerror before what it was doing), if any. */
const reasonOfText = (line: string | undefined): TransferError.Reason | undefined => {
  if (line === undefined) return undefined
  if (/^(?:Permission denied|Read-only file system|Operation not permitted) /.test(line)) return "PermissionDenied"
  if (/^(?:No space left on device|Disk quota exceeded) /.test(line)) return "DestinationFull"
  if (/^(?:Connection reset by peer|Connection timed out|Connection refused|No route to host|Network is unreachable) /.test(line)) {
    return "Connection"
  }
  return undefined
}

/**
 * Classifies a run that did not exit 0. bbcp mostly exits with the errno of what failed (2
 * ENOENT, 22 EINVAL, 28 ENOSPC, 30 EROFS); 172 is a checksum mismatch (`-EILSEQ & 0xff`), 255 an
 * ssh or remote-start failure or a bad option letter, and 143 (or a signal) a killed run. 128
 * only says that one of its threads failed (its time limit among other things), so the words
 * decide it. A source path named missing, when `situation` says the sources existed, is a
 * source that vanished mid-run, whatever the exit code (2, or 128 when a network thread saw it).
 */
export const classify = (exitCode: number | null, signal: string | null, stderr: string, situation: Situation = {}): Failure => {
  const report = parse(stderr)
  const first = report.errors[0]
  const detail = [...report.foreign, ...report.errors].slice(0, 3).join(" / ") || `bbcp exited with ${exitCode ?? signal}`
  if (exitCode === null || exitCode === 143 || exitCode === 130 || exitCode === 137) {
    return { reason: "Interrupted", detail: `bbcp ended by ${signal ?? `exit ${exitCode}`}` }
  }
  const sources = situation.sources ?? []
  const vanished = report.errors.find((e) => {
    const m = noSuchFile.exec(e)
    return m !== null && below(m[1]!, sources)
  })
  if (vanished !== undefined) return { reason: "SourceVanished", detail: `the source vanished during the copy: ${vanished}` }
  if (exitCode === 255) {
    const ssh = TransferHost.classifySsh(report.foreign.join("\n"))
    if (ssh !== undefined) return { reason: ssh.reason, detail }
    // the far shell could not make the staging folders, so bbcp's agent never started
    const staging = report.foreign.find((l) => /^mkdir: cannot create directory /.test(l))
    if (staging !== undefined) {
      const reason = /(Permission denied|Read-only file system|Operation not permitted)$/.test(staging)
        ? "PermissionDenied"
        : /(No space left on device|Disk quota exceeded)$/.test(staging)
        ? "DestinationFull"
        : "Unknown"
      return { reason, detail }
    }
    if (first !== undefined && /^Invalid option/.test(first)) return { reason: "InvalidRequest", detail }
    if (report.errors.some((e) => /unexpectedly terminated/.test(e))) return { reason: "Connection", detail }
    return { reason: "Unknown", detail }
  }
  if (/target checksum .* does not match/.test(first ?? "") || exitCode === 172) return { reason: "ChecksumMismatch", detail }
  if (/^Time limit exceeded/.test(first ?? "")) return { reason: "Timeout", detail }
  if (/^Invalid /.test(first ?? "") || /mutually exclusive/.test(first ?? "")) return { reason: "InvalidRequest", detail }
  switch (exitCode) {
    case 2:
      return /processing /.test(first ?? "") ? { reason: "SourceNotFound", detail } : { reason: "InvalidRequest", detail }
    case 22:
      return { reason: "InvalidRequest", detail }
    case 1:
      return { reason: "InvalidRequest", detail }
    case 13:
    case 30:
      return { reason: "PermissionDenied", detail }
    case 28:
    case 122:
      return { reason: "DestinationFull", detail }
    case 5:
      return { reason: "Partial", detail }
    case 32:
    case 103:
    case 104:
    case 110:
    case 111:
    case 113:
      return { reason: "Connection", detail }
    case 128:
      // a thread failed without saying why in words we know: the partial copy stays for a retry
      return { reason: reasonOfText(first) ?? "Partial", detail }
    default:
      return { reason: reasonOfText(first) ?? "Unknown", detail }
  }
}
