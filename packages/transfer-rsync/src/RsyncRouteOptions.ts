/**
 * A route's rsync options, as an operator writes them under the route's `options:`. The one schema
 * serves both the configuration check (at start, and `ccat config check`) and the worker that
 * builds the adapter for a transfer, so an option is refused at start, named, or reaches rsync's
 * command line; never dropped in silence. How to reach the far host (host, user, port, ...) is not
 * rsync's: the registration (`adapter`) extends this schema with core's ssh route options and the
 * whole is decoded strictly, so a misspelt key is refused too.
 */
import { TransferAdapter, TransferAdapterRegistry, TransferEndpoint } from "@ccat/core"
import * as Schema from "effect/Schema"
import * as RsyncTransfer from "./RsyncTransfer.js"

/** rsync on the far host: a path or a name on its PATH; rsync passes it to the remote shell, so no spaces or quotes. */
const Program = Schema.String.pipe(
  Schema.filter((s) => /^[^\s'"\\;&|`$]+$/.test(s) || "must be a path or a name on the PATH, without spaces, quotes or shell characters")
)

/** The rsync options of a route; each field names the rsync flag it becomes. */
export const RouteOptions = Schema.Struct({
  /** `--timeout`: seconds without any data before rsync gives up, 5 to 86400 (default 300). */
  ioTimeoutSeconds: Schema.optionalWith(
    Schema.Int.pipe(Schema.filter((n) => (n >= 5 && n <= 86_400) || `must be 5 to 86400 seconds, got ${n}`)),
    { exact: true }
  ),
  /** `--rsync-path`: rsync on the far host when it is not on its PATH. */
  remoteRsync: Schema.optionalWith(Program, { exact: true }),
  /** `-z`: compress on the wire; worth it only for compressible data on a slow link. */
  compress: Schema.optionalWith(Schema.Boolean, { exact: true })
})

/** The rsync options of a route, decoded. */
export type RouteOptions = typeof RouteOptions.Type

/** The adapter's options from a route's decoded ones. */
export const toOptions = (o: RouteOptions): Pick<RsyncTransfer.Options, "ioTimeoutSeconds" | "remoteRsync" | "compress"> => ({
  ...(o.ioTimeoutSeconds === undefined ? {} : { ioTimeoutSeconds: o.ioTimeoutSeconds }),
  ...(o.remoteRsync === undefined ? {} : { remoteRsync: o.remoteRsync }),
  ...(o.compress === undefined ? {} : { compress: o.compress })
})

/** A route's whole options for rsync: how to reach the far host over ssh, and rsync's own. */
export const Options = Schema.extend(TransferEndpoint.SshRouteOptions, RouteOptions)
/** A route's whole options for rsync, decoded. */
export type Options = typeof Options.Type

/** The rsync adapter, registered as `rsync`; it never retries by itself (the lifecycle records each attempt). */
export const adapter: TransferAdapterRegistry.Adapter = TransferAdapterRegistry.define({
  name: "rsync",
  options: Options,
  make: (o) => RsyncTransfer.make({ retry: TransferAdapter.noRetry, ...toOptions(o) })
})
