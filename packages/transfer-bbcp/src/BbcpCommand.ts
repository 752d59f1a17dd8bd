/**
 * The bbcp command line from typed options. bbcp's option parsing has traps that cost real
 * transfers (see ../shared/fixtures/bbcp/README.md): `-a` swallows the next word as its
 * checkpoint directory unless it starts with `-`, options must all precede the file specs,
 * `-S`/`-T` are split on spaces with no quoting, relative sources keep their directories under
 * the target, and some option pairs are refused (`-a` with `-E alg=...`, `-r` with `-E alg=value`).
 * The builder makes those mistakes impossible, or fails with a clear message.
 */

/** The checksum algorithms bbcp knows (`-E`). */
export type ChecksumAlgorithm = "md5" | "a32" | "c32"

/** What `-E alg=...` should do with the checksum. */
export type ChecksumMode =
  | { readonly _tag: "Compute" }
  | { readonly _tag: "Print" }
  | { readonly _tag: "Verify"; readonly value: string }
  | { readonly _tag: "ToFile"; readonly file: string }

/** Typed bbcp options; each field names the flag it becomes. */
export interface Options {
  /** `-a [dir]`: append mode, to complete a previously interrupted copy (needs `keep` on that run too). */
  readonly append?: { readonly checkpointDir?: string }
  /** `-k`: keep the partial target and its signature file when a copy fails (resume needs it). */
  readonly keep?: boolean
  /** `-r`: copy a directory tree. */
  readonly recursive?: boolean
  /** `-f`: unlink an existing target first. */
  readonly force?: boolean
  /** `-e`: md5 over the wire to catch transmission errors. */
  readonly errorCheck?: boolean
  /** `-E alg[=...]`: checksum algorithm and what to do with the checksum. */
  readonly checksum?: { readonly algorithm: ChecksumAlgorithm; readonly mode: ChecksumMode }
  /** `-s n`: parallel network streams (1 to 64). */
  readonly streams?: number
  /** `-w size`: TCP window, e.g. `4M` or a byte count (8 KiB to 1 GiB). */
  readonly window?: string | number
  /** `-B size`: block size of reads and writes, e.g. `1M` or a byte count (1 KiB to 1 GiB; default the window). */
  readonly blockSize?: string | number
  /** `-z`: the target connects back to the source (for firewalls that only let one side listen). */
  readonly reverse?: boolean
  /** `-Z first[:last]`: data ports to use. */
  readonly ports?: { readonly first: number; readonly last?: number }
  /** `-t sec`: give up after this many seconds. */
  readonly timeLimitSeconds?: number
  /** `-x rate`: cap the rate, e.g. `10m` or bytes per second (1 KiB/s to 1 GiB/s). */
  readonly rateLimit?: string | number
  /** `-P sec`: progress every `sec` seconds. Use 2 or more: `-P 1` floods (fixture 45). */
  readonly progressSeconds?: number
  /** `-v`: per-file lines and the summary line. */
  readonly verbose?: boolean
  /** `-V`: `verbose` plus window, cpu and buffer statistics. */
  readonly veryVerbose?: boolean
  /** `-i file`: ssh identity file (substituted for `%I` in `-S`/`-T`). */
  readonly identityFile?: string
  /** `-S cmd`: how to start bbcp on a remote source. */
  readonly sourceProgram?: string
  /** `-T cmd`: how to start bbcp on a remote target. */
  readonly targetProgram?: string
}

/** A `[user@][host:]path` file spec. */
export interface FileSpec {
  readonly path: string
  readonly host?: string
  readonly user?: string
}

/** Why the options or specs cannot make a correct bbcp command. */
export class InvalidCommand extends Error {
  override readonly name = "InvalidCommand"
}

const invalid = (message: string): never => {
  throw new InvalidCommand(message)
}

/** Formats a file spec; paths must be absolute (a relative source keeps its directories, fixture 43). */
export const formatSpec = (spec: FileSpec, role: "source" | "target"): string => {
  if (!spec.path.startsWith("/")) invalid(`bbcp ${role} path must be absolute, got ${spec.path}`)
  if (/\s/.test(spec.path)) invalid(`bbcp ${role} path must not contain white space: ${spec.path}`)
  if (spec.host === undefined) return spec.path
  return `${spec.user === undefined ? "" : `${spec.user}@`}${spec.host}:${spec.path}`
}

const checksumArg = (c: NonNullable<Options["checksum"]>): string => {
  switch (c.mode._tag) {
    case "Compute":
      return c.algorithm
    case "Print":
      return `${c.algorithm}=`
    case "Verify": {
      const digits = c.algorithm === "md5" ? 32 : 8
      if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(c.mode.value)) {
        invalid(`a ${c.algorithm} value to verify has ${digits} hex digits, got ${c.mode.value}`)
      }
      return `${c.algorithm}=${c.mode.value}`
    }
    case "ToFile":
      // bbcp reads a value when the text starts with a hex digit, a file otherwise
      if (!c.mode.file.startsWith("/")) invalid(`a checksum output file must be an absolute path, got ${c.mode.file}`)
      return `${c.algorithm}=${c.mode.file}`
  }
}

/** The largest size bbcp's option parser takes (it reads sizes into an int, 2^30 at most). */
export const maxSize = 2 ** 30

const sizeUnits: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }

/**
 * A size as bbcp reads it (`-w`, `-B`, `-x`): a byte count with an optional k, m or g suffix
 * (1024-based), within bbcp's own limits, so bbcp never stops on an option it refuses.
 */
const sizeArg = (what: string, value: string | number, min: number): string => {
  const m = /^(\d+)([kKmMgG]?)$/.exec(String(value))
  const bytes = m === null ? Number.NaN : Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!
  if (!(bytes >= min && bytes <= maxSize)) invalid(`bbcp takes a ${what} of ${min} bytes to 1g, got ${value}`)
  return String(value)
}

const program = (cmd: string, flag: string): string => {
  if (/['"\\]/.test(cmd)) invalid(`bbcp splits ${flag} on spaces and does no quoting: remove quotes from ${cmd}`)
  return cmd.trim().split(/\s+/).join(" ")
}

/**
 * The argv (without the binary) for copying `sources` to `target`. Options come first, in a
 * fixed order, then the specs.
 */
export const args = (options: Options, sources: ReadonlyArray<FileSpec>, target: FileSpec): Array<string> => {
  if (sources.length === 0) invalid("bbcp needs at least one source")
  const c = options.checksum
  if (options.append !== undefined && c !== undefined && c.mode._tag !== "Compute") {
    invalid("bbcp refuses -a with -E alg=...: verify the copy separately")
  }
  if (options.recursive === true && c?.mode._tag === "Verify") invalid("bbcp refuses -r with -E alg=<value>")
  if (options.streams !== undefined && (!Number.isInteger(options.streams) || options.streams < 1 || options.streams > 64)) {
    invalid(`streams must be 1 to 64, got ${options.streams}`)
  }
  if (options.progressSeconds !== undefined && (!Number.isInteger(options.progressSeconds) || options.progressSeconds < 1)) {
    invalid(`progress interval must be a whole number of seconds, got ${options.progressSeconds}`)
  }
  if (options.timeLimitSeconds !== undefined && !(options.timeLimitSeconds > 0)) {
    invalid(`time limit must be positive, got ${options.timeLimitSeconds}`)
  }
  const port = (p: number) => (Number.isInteger(p) && p > 0 && p < 65536 ? String(p) : invalid(`bad port ${p}`))
  const dir = options.append?.checkpointDir
  if (dir !== undefined && (dir.startsWith("-") || !dir.startsWith("/"))) {
    invalid(`the -a checkpoint directory must be an absolute path, got ${dir}`)
  }
  const out: Array<string> = []
  if (options.append !== undefined) out.push("-a", ...(dir === undefined ? [] : [dir]))
  if (options.keep === true) out.push("-k")
  if (options.recursive === true) out.push("-r")
  if (options.force === true) out.push("-f")
  if (options.errorCheck === true) out.push("-e")
  if (c !== undefined) out.push("-E", checksumArg(c))
  if (options.streams !== undefined) out.push("-s", String(options.streams))
  if (options.window !== undefined) out.push("-w", sizeArg("window", options.window, 8192))
  if (options.blockSize !== undefined) out.push("-B", sizeArg("block size", options.blockSize, 1024))
  if (options.reverse === true) out.push("-z")
  if (options.ports !== undefined) {
    out.push(
      "-Z",
      options.ports.last === undefined ? port(options.ports.first) : `${port(options.ports.first)}:${port(options.ports.last)}`
    )
  }
  if (options.timeLimitSeconds !== undefined) out.push("-t", String(options.timeLimitSeconds))
  if (options.rateLimit !== undefined) out.push("-x", sizeArg("rate", options.rateLimit, 1024))
  if (options.progressSeconds !== undefined) out.push("-P", String(options.progressSeconds))
  if (options.verbose === true) out.push("-v")
  if (options.veryVerbose === true) out.push("-V")
  if (options.identityFile !== undefined) out.push("-i", options.identityFile)
  if (options.sourceProgram !== undefined) out.push("-S", program(options.sourceProgram, "-S"))
  if (options.targetProgram !== undefined) out.push("-T", program(options.targetProgram, "-T"))
  // `-a` with no directory must not be followed by a spec it would swallow
  if (options.append !== undefined && dir === undefined && out[out.length - 1] === "-a") out.push("--")
  out.push(...sources.map((s) => formatSpec(s, "source")), formatSpec(target, "target"))
  return out
}

/**
 * The `-S`/`-T` program that starts bbcp on the far side over ssh. bbcp substitutes `%I`
 * (identity), `%U` (user) and `%H` (host) and appends `SRC` or `SNK`. `before` are words the far
 * host's shell runs ahead of bbcp in the same ssh call (ssh joins the words, the shell parses
 * them), ending with `&&` or `;`; each must be free of spaces and quotes, as bbcp cannot quote.
 */
export const sshProgram = (
  ssh: { readonly port?: number; readonly identityFile?: string; readonly sshOptions?: ReadonlyArray<string> },
  remoteBbcp = "bbcp",
  sshBinary = "ssh",
  before: ReadonlyArray<string> = []
): string =>
  [
    sshBinary,
    "-x",
    "-a",
    ...(ssh.port === undefined ? [] : ["-p", String(ssh.port)]),
    ...(ssh.identityFile === undefined ? [] : ["-i", ssh.identityFile]),
    ...["BatchMode=yes", "ConnectTimeout=30", "ServerAliveInterval=15", "ServerAliveCountMax=4", ...(ssh.sshOptions ?? [])].flatMap((
      o
    ) => ["-o", o]),
    "%I",
    "-l",
    "%U",
    "%H",
    ...before,
    remoteBbcp
  ]
    .map((w) => (/[\s'"\\]/.test(w) ? invalid(`bbcp cannot pass words with spaces or quotes to ssh: ${w}`) : w))
    .join(" ")

/** Quotes argv as a POSIX shell line, the way the fixtures' `.cmd` files are written (for logs). */
export const toShell = (argv: ReadonlyArray<string>): string =>
  argv.map((w) => (w !== "" && /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'"'"'`)}'`)).join(" ")

/** `-#`: bbcp prints its version on stdout (fixture 00); the adapter can log which bbcp it runs. */
export const versionArgs: ReadonlyArray<string> = ["-#"]

/** `--version`: the same as `-#` (fixture 01). */
export const longVersionArgs: ReadonlyArray<string> = ["--version"]

/** `-h`: usage on stdout (fixture 02). */
export const helpArgs: ReadonlyArray<string> = ["-h"]

/** The version bbcp printed, e.g. `14.04.14.00.1`, or undefined for anything else. */
export const parseVersion = (stdout: string): string | undefined => {
  const v = stdout.trim()
  return /^\d+(\.\d+)+$/.test(v) ? v : undefined
}
