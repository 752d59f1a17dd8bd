/**
 * The transfer adapter of a route: the route's adapter name (`local`, `rsync`, `bbcp`) becomes a
 * TransferAdapter service, and the two buffers' locations plus the route's options become the
 * request's endpoints. bbcp's and rsync's options are decoded by the schema each one's package
 * owns, extended with the ssh endpoint options, by the same rules at start (`optionProblems`) and
 * here, so what the start accepted reaches the tool; a local route takes none. The stage retries with its own attempt rows, so the adapters here
 * never retry by themselves; they verify the destination against the bundle's recorded checksum.
 */
import { Topology, TransferAdapter, TransferEndpoint, TransferError } from "@ccat/core"
import { LocalTransfer } from "@ccat/core/node"
import { BbcpRouteOptions, BbcpTransfer } from "@ccat/transfer-bbcp"
import { RsyncRouteOptions, RsyncTransfer } from "@ccat/transfer-rsync"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Routes from "./Routes.js"

/** Builds an adapter from a route's options. */
export type AdapterFactory = (options: Readonly<Record<string, unknown>>) => TransferAdapter.Service

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined)

/**
 * The route options that say how to reach the next hop's buffer over ssh (see `endpoints`),
 * shared by every adapter that pushes over ssh.
 */
export const EndpointOptions = Schema.Struct({
  host: Schema.optionalWith(Schema.String.pipe(Schema.filter((h) => /^[^\s/]+$/.test(h) || "must be a host name or address")), { exact: true }),
  user: Schema.optionalWith(Schema.String.pipe(Schema.filter((u) => /^[^\s@:]+$/.test(u) || "must be a user name")), { exact: true }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.filter((p) => (p >= 1 && p <= 65535) || `must be a port from 1 to 65535, got ${p}`)), { exact: true }),
  identityFile: Schema.optionalWith(Schema.String.pipe(Schema.filter((f) => f.startsWith("/") || "must be an absolute path")), { exact: true }),
  sshOptions: Schema.optionalWith(Schema.Array(Schema.String), { exact: true }),
  destinationRoot: Schema.optionalWith(Schema.String.pipe(Schema.filter((f) => f.startsWith("/") || "must be an absolute path")), { exact: true })
})

/** A bbcp route's options: how to reach the far host, and bbcp's own (owned by the adapter's package). */
export const BbcpOptions = Schema.extend(EndpointOptions, BbcpRouteOptions.RouteOptions)

/** An rsync route's options: how to reach the far host, and rsync's own (owned by the adapter's package). */
export const RsyncOptions = Schema.extend(EndpointOptions, RsyncRouteOptions.RouteOptions)


/** The route's own fields (limits, measured bandwidth), which the topology sync keeps in the row's options beside the adapter's. */
const routeLimits = new Set(Topology.routeFields)

const withoutLimits = (options: Readonly<Record<string, unknown>>) => Object.fromEntries(Object.entries(options).filter(([k]) => !routeLimits.has(k)))

/** Decodes a route's options strictly (a misspelt key is refused), each problem one line naming its field. */
const decodeWith = <A, I>(schema: Schema.Schema<A, I>) => (options: Readonly<Record<string, unknown>>) =>
  Either.mapLeft(Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(withoutLimits(options)), Topology.formatIssues)

const decodeBbcp = decodeWith(BbcpOptions)
const decodeRsync = decodeWith(RsyncOptions)

/** The option schema of each built-in adapter. */
const decoders: Readonly<Record<string, (options: Readonly<Record<string, unknown>>) => Either.Either<unknown, ReadonlyArray<string>>>> = {
  bbcp: decodeBbcp,
  rsync: decodeRsync,
  // none: both buffers are folders of this machine (an empty Struct would let any key through)
  local: (options) => {
    const keys = Object.keys(withoutLimits(options))
    return keys.length === 0 ? Either.right({}) : Either.left(keys.map((k) => `${k}: is unexpected: a local route takes no options`))
  }
}

/**
 * What is wrong with a route's options for a built-in adapter, one line per field (`streams:
 * bbcp takes 1 to 64 streams, got 0`); empty when nothing is. The configuration check at start
 * and the worker building the adapter use the same rules, strictly: a misspelt key is refused.
 * An integrator's adapter checks its own options when it is built.
 */
export const optionProblems = (adapter: string, options: Readonly<Record<string, unknown>>): ReadonlyArray<string> => {
  const decode = decoders[adapter]
  return decode === undefined ? [] : Either.match(decode(options), { onLeft: (p) => p, onRight: () => [] })
}

/** The built-in adapters, each without retries of its own (the stage records every attempt). */
export const builtIn: Readonly<Record<string, AdapterFactory>> = {
  local: () => LocalTransfer.make({ retry: TransferAdapter.noRetry }),
  rsync: (o) => {
    const decoded = decodeRsync(o)
    if (Either.isLeft(decoded)) throw new Error(`rsync options: ${decoded.left.join("; ")}`)
    return RsyncTransfer.make({ retry: TransferAdapter.noRetry, ...RsyncRouteOptions.toOptions(decoded.right) })
  },
  bbcp: (o) => {
    const decoded = decodeBbcp(o)
    if (Either.isLeft(decoded)) throw new Error(`bbcp options: ${decoded.left.join("; ")}`)
    return BbcpTransfer.make({ retry: TransferAdapter.noRetry, ...BbcpRouteOptions.toOptions(decoded.right) })
  }
}

/** Adapters by name; integrators add their own. Optional: the built-in ones apply without it. */
export class Adapters extends Context.Tag("@ccat/server/Adapters")<Adapters, Readonly<Record<string, AdapterFactory>>>() {}

/** The built-in adapters plus `extra`. */
export const layer = (extra: Readonly<Record<string, AdapterFactory>> = {}) => Layer.succeed(Adapters, { ...builtIn, ...extra })

/** The adapter of a route, or a non-retryable error naming what is missing. */
export const adapterOf = (route: Routes.Route) =>
  Effect.gen(function* () {
    const all = Option.getOrElse(yield* Effect.serviceOption(Adapters), () => builtIn)
    const factory = all[route.adapter]
    if (factory === undefined) {
      return yield* Effect.fail(TransferError.make(route.adapter, "Unsupported", `no transfer adapter named ${route.adapter} is registered`))
    }
    // the start refused such options; a row written by another version of the configuration may still hold them
    const problems = factory === builtIn[route.adapter] ? optionProblems(route.adapter, route.options) : []
    if (problems.length > 0) {
      return yield* Effect.fail(TransferError.make(route.adapter, "InvalidRequest", `the route's options are not valid: ${problems.join("; ")}`))
    }
    return yield* Effect.try({
      try: () => factory(route.options),
      catch: (e) => TransferError.make(route.adapter, "InvalidRequest", `the route's adapter cannot be built: ${e instanceof Error ? e.message : String(e)}`)
    })
  })

const joinPath = (root: string, key: string) => `${root.replace(/\/+$/, "")}/${key}`

/**
 * The endpoints of moving a bundle from `sourceKey` under the source buffer's root to
 * `destinationKey` under the destination buffer's root.
 * With a `host` in the route's options the destination is reached over ssh (push from the
 * sending site) at `destinationRoot` (default: the destination location's own root); otherwise
 * both ends are paths on this machine.
 */
export const endpoints = (
  route: Routes.Route,
  sourceRoot: string,
  sourceKey: string,
  destinationRoot: string,
  key: string
): { readonly source: TransferEndpoint.Endpoint; readonly destination: TransferEndpoint.Endpoint } => {
  const o = route.options
  const source = TransferEndpoint.local(joinPath(sourceRoot, sourceKey), route.fromSite)
  const host = str(o.host)
  if (host === undefined) return { source, destination: TransferEndpoint.local(joinPath(destinationRoot, key), route.nextHop) }
  const sshOptions = Array.isArray(o.sshOptions) ? o.sshOptions.filter((x): x is string => typeof x === "string") : undefined
  return {
    source,
    destination: TransferEndpoint.ssh({
      host,
      path: joinPath(str(o.destinationRoot) ?? destinationRoot, key),
      site: route.nextHop,
      ...(str(o.user) === undefined ? {} : { user: str(o.user)! }),
      ...(num(o.port) === undefined ? {} : { port: num(o.port)! }),
      ...(str(o.identityFile) === undefined ? {} : { identityFile: str(o.identityFile)! }),
      ...(sshOptions === undefined ? {} : { sshOptions })
    })
  }
}
