/**
 * The retries and circuit breaker of transfers, as pure rules: when a bundle's next attempt may
 * start after failures, and whether a route or a destination location lets work through. The
 * breaker keeps no state of its own: it is judged from facts (the last finished attempts and the
 * probes running) that the server reads from the ops-db, so every worker on every machine sees
 * the same circuit and a restart forgets nothing.
 */
import * as Duration from "effect/Duration"
import * as Backoff from "./Backoff.js"

/** Retries and breaker settings of transfers; every field has a production default. */
export interface TransferPolicyConfig {
  /** Failed attempts of one bundle before it ends FAILED (while its route is otherwise healthy). */
  readonly maxAttempts: number
  /** First retry delay, doubled per failed attempt, jittered to 50-100 %. */
  readonly backoffBaseMs: number
  /** Cap of the retry delay. */
  readonly backoffCapMs: number
  /** Consecutive failed attempts on a route or towards a location that open its circuit. */
  readonly breakerThreshold: number
  /** How long an open circuit waits before it lets one probe through. */
  readonly breakerCoolDownMs: number
  /** Deliveries of one bundle found corrupt at arrival before it ends FAILED. */
  readonly maxDeliveries: number
}

/** The defaults: ride out hours of link outage with few probes, no retry storms. */
export const defaultTransferPolicy: TransferPolicyConfig = {
  maxAttempts: 8,
  backoffBaseMs: 10_000,
  backoffCapMs: 15 * 60_000,
  breakerThreshold: 3,
  breakerCoolDownMs: 5 * 60_000,
  maxDeliveries: 3
}

/**
 * The delay in milliseconds before attempt `failures + 1`: exponential from the base, capped,
 * jittered to 50-100 % by `unit` (a stable one per attempt gives every look the same wait).
 */
export const backoffMs = (policy: TransferPolicyConfig, failures: number, unit = Math.random()): number =>
  Duration.toMillis(Backoff.delayFor({ base: policy.backoffBaseMs, cap: policy.backoffCapMs }, failures, unit))

/** Whether work may go through a route or towards a location now. */
export type Circuit =
  | { readonly state: "closed" }
  /** One probe may go: the cool-down after the last failure has passed. */
  | { readonly state: "half-open" }
  | { readonly state: "open"; readonly retryInMs: number; readonly reason: string }

/** What the circuit of one route or location is judged from: its last finished attempts, newest first, and the probes running. */
export interface CircuitFacts {
  readonly last: ReadonlyArray<{ readonly status: string; readonly sinceMs: number; readonly errorMessage: string | null }>
  readonly probing: number
}

/**
 * The circuit of a route or location from its facts: closed unless its last `breakerThreshold`
 * finished attempts all failed; then open for `breakerCoolDownMs` after the last failure, then
 * half-open (one probe) while no probe runs.
 */
export const circuitOf = (facts: CircuitFacts, policy: TransferPolicyConfig): Circuit => {
  const { last } = facts
  if (last.length < policy.breakerThreshold || last.some((r) => r.status !== "failed")) return { state: "closed" }
  const reason = `${policy.breakerThreshold} consecutive failures, the last: ${last[0]!.errorMessage ?? "unknown"}`
  const remaining = policy.breakerCoolDownMs - last[0]!.sinceMs
  if (remaining > 0) return { state: "open", retryInMs: Math.ceil(remaining), reason }
  return facts.probing > 0
    ? { state: "open", retryInMs: Math.min(policy.breakerCoolDownMs, 5_000), reason: `${reason}; a probe is running` }
    : { state: "half-open" }
}
