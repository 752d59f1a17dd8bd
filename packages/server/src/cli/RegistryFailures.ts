/**
 * Storage drivers or transfer adapters that cannot form a registry (a technology or adapter name a
 * configuration could not name) are a configuration error of the server's assembly, found at
 * start before anything runs: `ccat` says so in one line and exits 1, as it does for a bad
 * configuration file, rather than printing a stack trace.
 */
import { StorageDriverRegistry, TransferAdapterRegistry } from "@ccat/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"

/** Either registry's refusal. */
export type RegistryError = StorageDriverRegistry.RegistryError | TransferAdapterRegistry.RegistryError

/** Whether an error is a registry's refusal. */
export const isRegistryError = (e: unknown): e is RegistryError =>
  e instanceof StorageDriverRegistry.RegistryError || e instanceof TransferAdapterRegistry.RegistryError ||
  Predicate.isTagged(e, "StorageDriverRegistryError") || Predicate.isTagged(e, "TransferAdapterRegistryError")

/** Ends a command failed by a registry's refusal with `ccat: <problems>` on stderr and exit code 1. */
export const report = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A | void, Exclude<E, RegistryError>, R> =>
  Effect.catchIf(
    self,
    isRegistryError,
    (e) => Effect.zipRight(Console.error(`ccat: ${e.message}`), Effect.sync(() => (process.exitCode = 1)))
  ) as Effect.Effect<A | void, Exclude<E, RegistryError>, R>
