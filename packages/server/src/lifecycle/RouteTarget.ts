/**
 * Which configured route an operator means (`chile->cologne`, `chile->cologne->cornell`, or its
 * index in `routes`) and where its probe transfers go: from the sending site's BUFFER to the next
 * hop's, through the same endpoints a bundle's transfer uses (`Adapters.endpoints`). Before any
 * probe is written, both ends are checked: the source folder here, the destination folder here
 * or over the route's ssh, and the adapter's binary.
 */
import { StorageDriverRegistry, Topology, TransferEndpoint } from "@ccat/core"
import { TransferHost, TransferProcess } from "@ccat/core/node"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fs from "node:fs/promises"
import * as Plugins from "../Plugins.js"
import * as Adapters from "./Adapters.js"
import type * as Routes from "./Routes.js"

/** Why a route cannot be measured, or why measuring it failed. */
export class RouteBenchError extends Data.TaggedError("RouteBenchError")<{
  readonly reason: "BadInput" | "UnknownRoute" | "Unreachable" | "Unsupported" | "ProbeFailed" | "WriteFailed"
  readonly detail: string
}> {
  override get message(): string {
    return this.detail
  }
}

/** A configured route, ready to be probed. */
export interface RouteTarget {
  /** Its index in the configuration's `routes`. */
  readonly index: number
  /** How the route is named in output: `chile -> cologne`. */
  readonly name: string
  readonly config: Topology.RouteConfig
  /** The route as a transfer from its first site sees it (what `Adapters` takes). */
  readonly route: Routes.Route
  readonly source: { readonly location: string; readonly root: string }
  readonly destination: { readonly location: string; readonly root: string }
}

const nameOf = (r: Topology.RouteConfig) => [r.from, ...r.via, r.to].join(" -> ")

/** The route as a worker at its first site reads it from the ops-db (limits kept with the options). */
export const routeView = (r: Topology.RouteConfig, index: number): Routes.Route => ({
  id: `routes[${index}]`,
  fromSite: r.from,
  toSite: r.to,
  viaSite: r.via[0] ?? null,
  nextHop: r.via[0] ?? r.to,
  adapter: r.adapter,
  options: r.options,
  priority: r.priority,
  maxConcurrentTransfers: r.maxConcurrentTransfers,
  bandwidthLimit: r.bandwidthLimit
})

/** The first BUFFER at a site with a folder of files by key (a disk), by priority (writable ones first when `writable`). */
const bufferAt = (t: Topology.Topology, site: string, writable: boolean) => {
  const buffers = (t.sites.find((s) => s.name === site)?.locations ?? [])
    .filter((l) => l.type === "BUFFER" && (!writable || l.availability.write))
    .flatMap((l) => {
      const root = StorageDriverRegistry.localRoot(Plugins.builtIn.drivers, l.technology, l.driver)
      return root === undefined ? [] : [{ location: l.name, root, priority: l.priority }]
    })
    .sort((a, b) => a.priority - b.priority)
  const first = buffers[0]
  return first === undefined ? undefined : { location: first.location, root: first.root }
}

/**
 * The route `spec` names: `FROM->TO` (when one route joins them), `FROM->VIA->TO`, or its index
 * in `routes`. Unknown or ambiguous names are refused with the routes there are.
 */
export const resolve = (t: Topology.Topology, spec: string): Either.Either<RouteTarget, RouteBenchError> => {
  const known = t.routes.map((r, i) => `${i}: ${nameOf(r)} (${r.adapter})`).join("; ") || "none"
  const unknown = (why: string) =>
    Either.left(new RouteBenchError({ reason: "UnknownRoute", detail: `${why}; the configured routes are ${known}` }))
  const words = spec.split(/\s*(?:->|→)\s*/).map((w) => w.trim())
  let index: number
  if (/^\s*\d+\s*$/.test(spec)) {
    index = Number(spec)
    if (index >= t.routes.length) return unknown(`there is no route ${index}`)
  } else {
    if (words.length < 2 || words.some((w) => w === "")) {
      return unknown(`"${spec}" names no route: write FROM->TO, FROM->VIA->TO or the route's index`)
    }
    const matches = t.routes.flatMap((r, i) => {
      const path = [r.from, ...r.via, r.to]
      const exact = path.length === words.length && path.every((p, j) => p === words[j])
      const ends = words.length === 2 && r.from === words[0] && r.to === words[1]
      return exact || ends ? [i] : []
    })
    if (matches.length === 0) return unknown(`no route ${words.join(" -> ")} is configured`)
    if (matches.length > 1) return unknown(`${words.join(" -> ")} names ${matches.length} routes; name one by its path or index`)
    index = matches[0]!
  }
  const config = t.routes[index]!
  const route = routeView(config, index)
  const source = bufferAt(t, config.from, false)
  const destination = bufferAt(t, route.nextHop, true)
  if (source === undefined || destination === undefined) {
    const site = source === undefined ? config.from : route.nextHop
    return Either.left(
      new RouteBenchError({
        reason: "Unsupported",
        detail: `route ${nameOf(config)}: site ${site} has no ${
          source === undefined ? "" : "writable "
        }BUFFER on disk; bundles move between disk buffers`
      })
    )
  }
  return Either.right({ index, name: nameOf(config), config, route, source, destination })
}

/** The endpoints of a probe transfer of `sourceKey` (under the source buffer) to `key` (under the destination's). */
export const endpointsOf = (target: RouteTarget, sourceKey: string, key: string) =>
  Adapters.endpoints(target.route, target.source.root, sourceKey, target.destination.root, key)

/** The destination buffer's folder as the route reaches it (over ssh or here). */
export const destinationFolder = (target: RouteTarget): TransferEndpoint.Endpoint => {
  const d = endpointsOf(target, ".", "x").destination
  return TransferEndpoint.withPath(d, d.path.replace(/\/x$/, ""))
}

const writableHere = (dir: string) =>
  Effect.tryPromise(async () => {
    const st = await fs.stat(dir)
    if (!st.isDirectory()) throw new Error("not a folder")
    await fs.access(dir, fs.constants.W_OK)
  })

/**
 * Checks that both ends are reachable and writable and the adapter's binary is there, before
 * anything is written; fails with what is wrong and where.
 */
export const checkEnds = (target: RouteTarget) =>
  Effect.gen(function* () {
    const unreachable = (detail: string) => new RouteBenchError({ reason: "Unreachable", detail: `route ${target.name}: ${detail}` })
    yield* writableHere(target.source.root).pipe(
      Effect.mapError((e) =>
        unreachable(
          `the source buffer ${target.source.location}'s folder ${target.source.root} is not a writable folder here (${errorText(e)})`
        )
      )
    )
    const dest = destinationFolder(target)
    const where = `the destination buffer ${target.destination.location}'s folder ${TransferEndpoint.format(dest)}`
    if (dest._tag === "Local") {
      yield* writableHere(dest.path).pipe(Effect.mapError((e) => unreachable(`${where} is not a writable folder here (${errorText(e)})`)))
    } else {
      const q = TransferProcess.shellQuote
      yield* TransferHost.remote(target.config.adapter, dest, `test -d ${q(dest.path)} && test -w ${q(dest.path)} || exit 3`).pipe(
        Effect.mapError((e) =>
          unreachable(e.reason === "SourceNotFound" ? `${where} is not a writable folder` : `${where} cannot be reached: ${e.detail}`)
        )
      )
    }
    if (target.config.adapter === "bbcp") {
      const binary = typeof target.config.options.bbcp === "string" ? target.config.options.bbcp : "bbcp"
      yield* BbcpTransfer.findBinary(binary).pipe(
        Effect.mapError((e) => new RouteBenchError({ reason: "Unsupported", detail: `route ${target.name}: ${e.detail}` }))
      )
    }
  })

const errorText = (e: unknown): string => {
  const cause = (e as { error?: unknown }).error ?? e
  return cause instanceof Error ? cause.message : String(cause)
}
