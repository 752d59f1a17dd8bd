/**
 * The transfer adapter of a route (issue 6, item 3): the route's adapter name (`local`, `rsync`,
 * `bbcp`) becomes a TransferAdapter service, and the two buffers' locations plus the route's
 * options become the request's endpoints. The stage retries with its own attempt rows, so the
 * adapters here never retry by themselves; they verify the destination against the bundle's
 * recorded checksum.
 */
import { TransferAdapter, TransferEndpoint, TransferError } from "@ccat/core"
import { LocalTransfer } from "@ccat/core/node"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import { RsyncTransfer } from "@ccat/transfer-rsync"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Routes from "./Routes.js"

/** Builds an adapter from a route's options. */
export type AdapterFactory = (options: Readonly<Record<string, unknown>>) => TransferAdapter.Service

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined)
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined)

/** The built-in adapters, each without retries of its own (the stage records every attempt). */
export const builtIn: Readonly<Record<string, AdapterFactory>> = {
  local: () => LocalTransfer.make({ retry: TransferAdapter.noRetry }),
  rsync: (o) =>
    RsyncTransfer.make({
      retry: TransferAdapter.noRetry,
      ...(num(o.ioTimeoutSeconds) === undefined ? {} : { ioTimeoutSeconds: num(o.ioTimeoutSeconds)! }),
      ...(str(o.remoteRsync) === undefined ? {} : { remoteRsync: str(o.remoteRsync)! }),
      ...(o.compress === true ? { compress: true } : {})
    }),
  bbcp: (o) =>
    BbcpTransfer.make({
      retry: TransferAdapter.noRetry,
      ...(str(o.bbcp) === undefined ? {} : { bbcp: str(o.bbcp)! }),
      ...(str(o.remoteBbcp) === undefined ? {} : { remoteBbcp: str(o.remoteBbcp)! })
    })
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
    return factory(route.options)
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
