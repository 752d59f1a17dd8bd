/**
 * The rsync transfer adapter: local, or over ssh to another site. rsync brings what long, lossy
 * links need: partial files kept aside for a resume (`--partial-dir`) that the next attempt uses
 * as the basis of a delta, an idle timeout, a bandwidth cap. The core adds what rsync's own
 * checks do not give the ops-db: our checksums of the destination (SHA-256 by default), a
 * size-scaled deadline, and retries with backoff.
 */
import { TransferAdapter, TransferError } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as RsyncCommand from "./RsyncCommand.js"

/** The adapter's name in results, errors and DataTransfer rows. */
export const name = "rsync"

/** Options of the rsync adapter, on top of the service's (retry, verify, timeout). */
export interface Options extends TransferAdapter.Options, RsyncCommand.CommandOptions {
  /** The rsync binary (default `rsync` from PATH). */
  readonly rsync?: string
}

/** The argv of the ssh-free command that `copy` would run, for logs and the benchmark. */
export const command = (request: TransferAdapter.Request, options: Options = {}): Array<string> => [
  options.rsync ?? "rsync",
  ...RsyncCommand.args(request, options)
]

/** The minimal rsync adapter (size, copy, manifest, remove), for composing or wrapping. */
export const minimal = (options: Options = {}): TransferAdapter.Minimal => ({
  name,
  capabilities: { resume: true, remote: true, directories: true, bandwidthLimit: true },
  size: (endpoint, kind) => TransferHost.size(name, endpoint, kind, options.ssh),
  manifest: (endpoint, kind, algorithm) => TransferHost.manifest(name, endpoint, kind, algorithm, options.ssh),
  remove: (endpoint) => TransferHost.remove(name, endpoint, options.ssh),
  copy: Effect.fn("RsyncTransfer.copy")(function* (request, report) {
    const runtime = yield* Effect.runtime<never>()
    const [binary, ...argv] = command(request, options)
    // What exactly runs, for an operator checking a route's options (at debug level).
    yield* Effect.logDebug("rsync command").pipe(Effect.annotateLogs("command", [binary, ...argv].join(" ")))
    const started = Date.now()
    let last = -1
    const outcome = yield* TransferProcess.run({
      command: binary!,
      args: argv,
      onLine: (line, stream) => {
        if (stream !== "stdout") return
        const p = RsyncCommand.parseProgress(line)
        if (p === undefined || p.bytes === last) return
        last = p.bytes
        const base = TransferAdapter.progressOf(p.bytes, request.totalBytes, Date.now() - started)
        Runtime.runFork(runtime)(report({ ...base, rate: p.rate }))
      }
    }).pipe(
      Effect.mapError((e) =>
        TransferError.make(
          name,
          e.missing ? "ToolMissing" : "Unknown",
          e.missing ? `${binary} not found: install rsync or set the adapter's rsync option` : e.message,
          {
            cause: e
          }
        )
      )
    )
    if (outcome.exitCode !== 0) {
      const c = RsyncCommand.classify(outcome.exitCode, outcome.signal, outcome.stderr)
      return yield* Effect.fail(
        TransferError.make(name, c.reason, c.detail, {
          ...(c.retryable === undefined ? {} : { retryable: c.retryable }),
          ...(outcome.exitCode === null ? {} : { exitCode: outcome.exitCode })
        })
      )
    }
    const stats = RsyncCommand.parseStats(outcome.stdout)
    return { bytesSent: stats.literal ?? request.totalBytes, resumedBytes: stats.matched ?? 0 }
  })
})

/** The full rsync adapter: the core's verification, deadline and retries around `minimal`. */
export const make = (options: Options = {}): TransferAdapter.Service => TransferAdapter.make(minimal(options), options)

/** Provides the generic TransferAdapter tag with the rsync adapter. */
export const layer = (options: Options = {}): Layer.Layer<TransferAdapter.TransferAdapter> =>
  Layer.succeed(TransferAdapter.TransferAdapter, make(options))
