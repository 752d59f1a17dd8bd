/**
 * The transfer adapter of a route: the route's adapter name (`local`, `rsync`, `bbcp`, or an
 * integrator's) is looked up in the adapter registry, and the route's options are decoded by that
 * adapter's own schema, the one the start checked them with, so what the start accepted reaches
 * the tool; the two buffers' locations plus the ssh options become the request's endpoints. The
 * stage retries with its own attempt rows, so the adapters here never retry by themselves; they
 * verify the destination against the bundle's recorded checksum.
 */
import { Topology, TransferAdapterRegistry, TransferEndpoint, TransferError } from "@ccat/core"
import { LocalTransfer } from "@ccat/core/node"
import { BbcpRouteOptions } from "@ccat/transfer-bbcp"
import { RsyncRouteOptions } from "@ccat/transfer-rsync"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Routes from "./Routes.js"

/** The built-in adapters: local, rsync and bbcp. */
export const builtIn: ReadonlyArray<TransferAdapterRegistry.Adapter> = [
  LocalTransfer.adapter,
  RsyncRouteOptions.adapter,
  BbcpRouteOptions.adapter
]

/** The built-in adapters as a registry. */
export const builtInRegistry = Either.getOrThrow(TransferAdapterRegistry.make(builtIn))

/** The adapter registry with the given adapters (default: the built-in ones); a later one of the same name replaces an earlier one. */
export const layer = (adapters: ReadonlyArray<TransferAdapterRegistry.Adapter> = builtIn) => TransferAdapterRegistry.layer(adapters)

/** The built-in adapters with `extra` added or replacing one of the same name. */
export const layerWith = (extra: ReadonlyArray<TransferAdapterRegistry.Adapter>) => layer([...builtIn, ...extra])

/** The route's own fields (limits, measured bandwidth), which the topology sync keeps in the row's options beside the adapter's. */
const routeLimits = new Set(Topology.routeFields)

/** A route row's options without the route's own fields: what its adapter was configured with. */
export const adapterOptions = (options: Readonly<Record<string, unknown>>) =>
  Object.fromEntries(Object.entries(options).filter(([k]) => !routeLimits.has(k)))

/** The registry in the context, or the built-in adapters. */
export const registry = Effect.map(
  Effect.serviceOption(TransferAdapterRegistry.TransferAdapterRegistry),
  Option.getOrElse(() => builtInRegistry)
)

/** The adapter of a route, or a non-retryable error naming what is missing or wrong. */
export const adapterOf = (route: Routes.Route) =>
  Effect.gen(function* () {
    const adapters = yield* registry
    if (!adapters.adapters.has(route.adapter)) {
      return yield* Effect.fail(
        TransferError.make(route.adapter, "Unsupported", `no transfer adapter named ${route.adapter} is registered`)
      )
    }
    // the start refused such options; a row written by another version of the configuration may still hold them
    const decoded = TransferAdapterRegistry.decode(adapters, route.adapter, adapterOptions(route.options))
    if (Either.isLeft(decoded)) {
      return yield* Effect.fail(
        TransferError.make(route.adapter, "InvalidRequest", `the route's options are not valid: ${decoded.left.join("; ")}`)
      )
    }
    const { adapter, options } = decoded.right
    return yield* Effect.try({
      try: () => adapter.make(options),
      catch: (e) =>
        TransferError.make(
          route.adapter,
          "InvalidRequest",
          `the route's adapter cannot be built: ${e instanceof Error ? e.message : String(e)}`
        )
    })
  })

const joinPath = (root: string, key: string) => `${root.replace(/\/+$/, "")}/${key}`

const sshOptionsOf = Schema.decodeUnknownOption(TransferEndpoint.SshRouteOptions)

/**
 * The endpoints of moving a bundle from `sourceKey` under the source buffer's root to
 * `destinationKey` under the destination buffer's root.
 * With a `host` in the route's options the destination is reached over ssh (push from the
 * sending site) at `destinationRoot` (default: the destination location's own root); otherwise
 * both ends are paths on this machine. The ssh options are core's schema, the one every ssh
 * adapter's options extend.
 */
export const endpoints = (
  route: Routes.Route,
  sourceRoot: string,
  sourceKey: string,
  destinationRoot: string,
  key: string
): { readonly source: TransferEndpoint.Endpoint; readonly destination: TransferEndpoint.Endpoint } => {
  const source = TransferEndpoint.local(joinPath(sourceRoot, sourceKey), route.fromSite)
  const o = Option.getOrElse(sshOptionsOf(route.options), () => ({}) as typeof TransferEndpoint.SshRouteOptions.Type)
  if (o.host === undefined) return { source, destination: TransferEndpoint.local(joinPath(destinationRoot, key), route.nextHop) }
  return {
    source,
    destination: TransferEndpoint.ssh({
      host: o.host,
      path: joinPath(o.destinationRoot ?? destinationRoot, key),
      site: route.nextHop,
      ...(o.user === undefined ? {} : { user: o.user }),
      ...(o.port === undefined ? {} : { port: o.port }),
      ...(o.identityFile === undefined ? {} : { identityFile: o.identityFile }),
      ...(o.sshOptions === undefined ? {} : { sshOptions: o.sshOptions })
    })
  }
}
