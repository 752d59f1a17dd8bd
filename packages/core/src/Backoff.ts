/**
 * Exponential backoff with jitter and a cap (DESIGN §4.5): the one policy every retry in the
 * platform waits by, whether it loops in an Effect (`schedule`) or stores the next try's time in
 * the ops-db (`delayFor`, given its own random unit so every look at one failure computes the
 * same wait). Pure: no Node, no I/O, so the client and analysis code can use it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"

/** The spread of one wait: the capped delay is scaled by a factor drawn uniformly from [min, max]. */
export interface Jitter {
  readonly min: number
  readonly max: number
}

/** Half to all of the delay: many callers that failed together do not come back together. */
export const halfToFull: Jitter = { min: 0.5, max: 1 }

/** 80 to 120 % of the delay (Effect's `Schedule.jittered`), never above the cap. */
export const around: Jitter = { min: 0.8, max: 1.2 }

/** No spread: every caller waits the same (for waits that a rate limit already spreads). */
export const none: Jitter = { min: 1, max: 1 }

/** How long to wait before each retry. */
export interface Policy {
  /** The wait before the first retry, before jitter. */
  readonly base: Duration.DurationInput
  /** Growth per retry (default 2). */
  readonly factor?: number | undefined
  /** No wait is longer than this, jitter included (default: no cap). */
  readonly cap?: Duration.DurationInput | undefined
  /** The spread of each wait (default `halfToFull`). */
  readonly jitter?: Jitter | undefined
  /** Retries after the first attempt, for `schedule`; without it the schedule never ends. */
  readonly times?: number | undefined
}

/**
 * The wait before retry `retry` (1-based; the number of failures so far): `base·factor^(retry-1)`,
 * capped, scaled by the jitter at `unit` (0 gives the jitter's `min`, 1 its `max`), capped again,
 * in whole milliseconds. A retry below 1 waits as the first.
 */
export const delayFor = (policy: Policy, retry: number, unit: number): Duration.Duration => {
  const cap = policy.cap === undefined ? Infinity : Duration.toMillis(Duration.decode(policy.cap))
  const raw = Duration.toMillis(Duration.decode(policy.base)) * Math.pow(policy.factor ?? 2, Math.max(0, retry - 1))
  const jitter = policy.jitter ?? halfToFull
  const scaled = Math.min(cap, raw) * (jitter.min + (jitter.max - jitter.min) * Math.min(1, Math.max(0, unit)))
  const ms = Math.min(cap, scaled)
  return Number.isFinite(ms) ? Duration.millis(Math.round(ms)) : Duration.infinity
}

/**
 * The policy as a schedule whose output is each wait: the n-th recurrence waits
 * `delayFor(policy, n, u)` with `u` from Effect's `Random` (so a test can seed it), for
 * `policy.times` recurrences or forever.
 */
export const schedule = (policy: Policy): Schedule.Schedule<Duration.Duration> => {
  const waits = Schedule.delays(
    Schedule.modifyDelayEffect(Schedule.forever, (n) => Effect.map(Random.next, (u) => delayFor(policy, n + 1, u)))
  )
  return policy.times === undefined ? waits : Schedule.zipLeft(waits, Schedule.recurs(policy.times))
}
