/**
 * Transfer adapters found by name. An adapter is registered with the Schema of its own route
 * options and a factory, so a route's `options:` are decoded by the one schema the adapter owns,
 * at start (every problem named by field) and again when a worker builds the adapter for a
 * transfer from what the ops-db holds. The built-in adapters (local, rsync, bbcp) register
 * themselves the same way an integrator's adapter does.
 */
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { formatIssues, Slug } from "./internal/TopologySchema.js"
import type * as TransferAdapter from "./TransferAdapter.js"

/** A transfer adapter as the server finds it. `A` is the decoded route options, `I` what an operator writes. */
export interface Adapter<A = any, I = any> {
  /** The name a route names in `adapter:` (lower case, as `rsync`). */
  readonly name: string
  /** The adapter's route options; decoded strictly, so a misspelt option is refused, named. */
  readonly options: Schema.Schema<A, I>
  /**
   * Builds the adapter for a route. The lifecycle records every attempt and retries with its own
   * backoff, so an adapter built here should not retry by itself (`TransferAdapter.noRetry`).
   */
  readonly make: (options: A) => TransferAdapter.Service
}

/** Declares an adapter, keeping its options' type between the schema and the factory. */
export const define = <A, I>(adapter: Adapter<A, I>): Adapter => adapter as Adapter

/** The registered adapters, by name. */
export interface Registry {
  readonly adapters: ReadonlyMap<string, Adapter>
}

/** The registry the server builds transfer adapters from. */
export class TransferAdapterRegistry extends Context.Tag("@ccat/core/TransferAdapterRegistry")<TransferAdapterRegistry, Registry>() {}

/** Why a set of adapters cannot form a registry: a name a configuration could not name. */
export class RegistryError extends Schema.TaggedError<RegistryError>()("TransferAdapterRegistryError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `transfer adapters cannot be registered: ${this.problems.join("; ")}`
  }
}

const isSlug = Schema.is(Slug)

/** A registry of the given adapters; a later adapter of the same name replaces an earlier one. */
export const make = (adapters: ReadonlyArray<Adapter>): Either.Either<Registry, RegistryError> => {
  const bad = adapters.filter((a) => !isSlug(a.name)).map((a) =>
    `"${a.name}" is not an adapter name (a-z, 0-9 and -, starting with a letter)`
  )
  if (bad.length > 0) return Either.left(new RegistryError({ problems: bad }))
  return Either.right({ adapters: new Map(adapters.map((a) => [a.name, a])) })
}

/** A registry of the given adapters as a layer; a bad registration fails the layer. */
export const layer = (adapters: ReadonlyArray<Adapter>): Layer.Layer<TransferAdapterRegistry, RegistryError> =>
  Layer.effect(TransferAdapterRegistry, make(adapters))

/** The registered adapter names, sorted, for messages. */
export const names = (registry: Registry): ReadonlyArray<string> => [...registry.adapters.keys()].sort()

const strict = { errors: "all", onExcessProperty: "error" } as const

/**
 * A route's options decoded by its adapter, or every problem, each naming its option
 * (`options.streams: ...`) or the adapter itself when none is registered by that name.
 */
export const decode = (
  registry: Registry,
  name: string,
  options: unknown
): Either.Either<{ readonly adapter: Adapter; readonly options: unknown }, ReadonlyArray<string>> => {
  const adapter = registry.adapters.get(name)
  if (adapter === undefined) {
    return Either.left([`adapter: no transfer adapter is registered as "${name}"; registered: ${names(registry).join(", ") || "none"}`])
  }
  return Either.match(Schema.decodeUnknownEither(adapter.options, strict)(options), {
    onLeft: (e) => Either.left(formatIssues(e).map((p) => p.startsWith("(top level): ") ? `options: ${p.slice(13)}` : `options.${p}`)),
    onRight: (decoded) => Either.right({ adapter, options: decoded })
  })
}

/** Builds a route's adapter from its options; the problems of its options when they do not decode. */
export const build = (registry: Registry, name: string, options: unknown): Either.Either<TransferAdapter.Service, ReadonlyArray<string>> =>
  Either.map(decode(registry, name, options), ({ adapter, options }) => adapter.make(options))
