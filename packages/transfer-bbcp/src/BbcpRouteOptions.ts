/**
 * A route's bbcp options, as an operator writes them under the route's `options:`. The one schema
 * serves both the configuration check (at start, and `ccat config check`) and the worker that
 * builds the adapter for a transfer: an option is either refused at start, named, or reaches
 * bbcp's command line; never dropped in silence, never accepted at start and refused later.
 *
 * Sizes are written as everywhere in the configuration (`8 MiB`, `4 MB`, or bytes), and are kept
 * within what bbcp's own parser takes, so bbcp never stops on a value the check let through. The
 * route's other options (how to reach the far host) are not bbcp's: the registration (`adapter`)
 * extends this schema with core's ssh route options and the whole is decoded strictly, so a
 * misspelt key is refused too.
 */
import { Topology, TransferAdapter, TransferAdapterRegistry, TransferEndpoint } from "@ccat/core"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as BbcpCommand from "./BbcpCommand.js"
import * as BbcpTransfer from "./BbcpTransfer.js"

const mib = (n: number) => (n >= 1024 ** 2 ? `${n / 1024 ** 2} MiB` : `${n / 1024} KiB`)

/** A size from `min` up to bbcp's largest (1 GiB). */
const SizeWithin = (what: string, min: number) =>
  Topology.ByteSize.pipe(
    Schema.filter((n) => (n >= min && n <= BbcpCommand.maxSize) || `bbcp takes a ${what} of ${mib(min)} to 1 GiB, got ${n} bytes`)
  )

/** A program bbcp runs: a path or a name on the PATH. bbcp splits `-T` on spaces, so none are allowed. */
const Program = Schema.String.pipe(
  Schema.filter((s) => /^[^\s'"\\]+$/.test(s) || "must be a path or a name on the PATH, without spaces or quotes")
)

const Port = Schema.Int.pipe(Schema.filter((p) => (p >= 1 && p <= 65535) || `must be a port from 1 to 65535, got ${p}`))

/** `-Z`: one port, or `first:last`. */
const Ports = Schema.Union(
  Port.pipe(Schema.transform(Schema.Struct({ first: Schema.Number, last: Schema.optional(Schema.Number) }), {
    strict: true,
    decode: (first) => ({ first }),
    encode: (p) => p.first
  })),
  Schema.transformOrFail(Schema.String, Schema.Struct({ first: Schema.Number, last: Schema.optional(Schema.Number) }), {
    strict: true,
    decode: (text, _, ast) => {
      const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(text)
      const first = m === null ? Number.NaN : Number(m[1])
      const last = m?.[2] === undefined ? first : Number(m[2])
      return m !== null && first >= 1 && last <= 65535 && first <= last
        ? ParseResult.succeed(m[2] === undefined ? { first } : { first, last })
        : ParseResult.fail(
          new ParseResult.Type(
            ast,
            text,
            `"${text}" is not a port range; write e.g. 5031 or "5031:5040" (first not above last, 1 to 65535)`
          )
        )
    },
    encode: (p) => ParseResult.succeed(p.last === undefined ? String(p.first) : `${p.first}:${p.last}`)
  })
)

/** The bbcp options of a route; each field names the bbcp flag it becomes. */
export const RouteOptions = Schema.Struct({
  /** The bbcp binary at the sending site: a path, or a name on the PATH (default `bbcp`). */
  bbcp: Schema.optionalWith(Program, { exact: true }),
  /** bbcp on the far host, started over ssh (default `bbcp` on its PATH). */
  remoteBbcp: Schema.optionalWith(Program, { exact: true }),
  /** `-s`: parallel TCP streams, 1 to 64. */
  streams: Schema.optionalWith(Schema.Int.pipe(Schema.filter((n) => (n >= 1 && n <= 64) || `bbcp takes 1 to 64 streams, got ${n}`)), {
    exact: true
  }),
  /** `-w`: TCP window per stream, 8 KiB to 1 GiB; while the kernel autotunes, it only sizes bbcp's buffers. */
  window: Schema.optionalWith(SizeWithin("window", 8192), { exact: true }),
  /** `-B`: size of each read and write, 1 KiB to 1 GiB (bbcp's default: the window). */
  blockSize: Schema.optionalWith(SizeWithin("block size", 1024), { exact: true }),
  /** `-E alg`: a checksum of every block, checked as it arrives (`md5`, or the faster `a32`, `c32`). */
  checksum: Schema.optionalWith(Schema.Literal("md5", "a32", "c32"), { exact: true }),
  /** `-Z`: the data ports, for firewalls (`5031` or `"5031:5040"`). */
  ports: Schema.optionalWith(Ports, { exact: true }),
  /** `-z`: the far side connects back, for a firewall that lets only the sending side listen. */
  reverse: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** Seconds the route's ssh connection waits for its next transfer, 0 to 3600 (default 60; 0: one connection per transfer). */
  sshIdleSeconds: Schema.optionalWith(
    Schema.Int.pipe(Schema.filter((n) => (n >= 0 && n <= 3600) || `must be 0 to 3600 seconds, got ${n}`)),
    { exact: true }
  ),
  /** Transfers one ssh connection carries at once, 1 to 1000: at most the far sshd's `MaxSessions` (default 10, OpenSSH's). */
  sshMaxSessions: Schema.optionalWith(
    Schema.Int.pipe(Schema.filter((n) => (n >= 1 && n <= 1000) || `must be 1 to 1000 sessions, got ${n}`)),
    { exact: true }
  ),
  /** `-P`: seconds between progress lines, 2 to 3600 (default 2; `-P 1` floods). */
  progressSeconds: Schema.optionalWith(
    Schema.Int.pipe(Schema.filter((n) => (n >= 2 && n <= 3600) || `must be 2 to 3600 seconds, got ${n}`)),
    { exact: true }
  )
})

/** The bbcp options of a route, decoded. */
export type RouteOptions = typeof RouteOptions.Type

/** The adapter's options from a route's decoded ones. */
export const toOptions = (
  o: RouteOptions
): Pick<BbcpTransfer.Options, "bbcp" | "remoteBbcp" | "progressSeconds" | "tuning" | "connection"> => ({
  ...(o.bbcp === undefined ? {} : { bbcp: o.bbcp }),
  connection: {
    ...(o.sshIdleSeconds === undefined ? {} : { idleSeconds: o.sshIdleSeconds }),
    ...(o.sshMaxSessions === undefined ? {} : { maxSessions: o.sshMaxSessions })
  },
  ...(o.remoteBbcp === undefined ? {} : { remoteBbcp: o.remoteBbcp }),
  ...(o.progressSeconds === undefined ? {} : { progressSeconds: o.progressSeconds }),
  tuning: {
    ...(o.streams === undefined ? {} : { streams: o.streams }),
    ...(o.window === undefined ? {} : { window: o.window }),
    ...(o.blockSize === undefined ? {} : { blockSize: o.blockSize }),
    ...(o.checksum === undefined ? {} : { checksum: o.checksum }),
    ...(o.ports === undefined ? {} : { ports: o.ports }),
    ...(o.reverse === undefined ? {} : { reverse: o.reverse })
  }
})

/** A route's whole options for bbcp: how to reach the far host over ssh, and bbcp's own. */
export const Options = Schema.extend(TransferEndpoint.SshRouteOptions, RouteOptions)
/** A route's whole options for bbcp, decoded. */
export type Options = typeof Options.Type

/** The bbcp adapter, registered as `bbcp`; it never retries by itself (the lifecycle records each attempt). */
export const adapter: TransferAdapterRegistry.Adapter = TransferAdapterRegistry.define({
  name: "bbcp",
  options: Options,
  make: (o) => BbcpTransfer.make({ retry: TransferAdapter.noRetry, ...toOptions(o) })
})
