/**
 * Waiting in a test for something that happens on its own time (a process ready, a worker's
 * next tick, a page refreshed): the condition is checked again and again, never slept on for a
 * fixed time, and a wait that does not end fails after a bound with a message naming what was
 * awaited. One helper for Effect and Promise tests alike, so every wait reads and fails the same.
 *
 *   yield* waitUntil("every package ARCHIVED", archived, 40_000)            // an Effect
 *   const row = await waitUntil("the server to answer", () => probe(), 30_000) // a Promise
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** What a check answers: `undefined` or `false` while the condition does not hold yet, else the value awaited. */
export type Answer<A> = A | undefined | false

/** What a wait returns: the check's first answer that is neither `undefined` nor `false`. */
export type Found<A> = Exclude<A, undefined | false>

/** How a wait polls and what its failure says besides `what`. */
export interface Options {
  /** Between two checks (default 100 ms: short enough not to add to a test's time, long enough not to load the machine). */
  readonly intervalMs?: number
  /** Added to the failure message: what the awaited thing was doing (a process's output, the rows seen last). */
  readonly detail?: () => string
}

/** The default time between two checks. */
export const defaultIntervalMs = 100

/** The failure message of a wait that did not end: the bound, `what`, and the detail when given. */
export const timedOut = (what: string, ms: number, options?: Options): string => {
  const detail = options?.detail?.()
  return `timed out after ${ms} ms waiting for ${what}${detail === undefined || detail === "" ? "" : `:\n${detail}`}`
}

const done = <A>(answer: Answer<A>): answer is Found<A> => answer !== undefined && answer !== false

const waitEffect = <A, E, R>(what: string, check: Effect.Effect<Answer<A>, E, R>, ms: number, options?: Options) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    const interval = Duration.millis(options?.intervalMs ?? defaultIntervalMs)
    for (;;) {
      const answer = yield* check
      if (done(answer)) return answer
      if (Date.now() > deadline) return yield* Effect.dieMessage(timedOut(what, ms, options))
      yield* Effect.sleep(interval)
    }
  })

const waitPromise = async <A>(what: string, check: () => Answer<A> | Promise<Answer<A>>, ms: number, options?: Options) => {
  const deadline = Date.now() + ms
  const interval = options?.intervalMs ?? defaultIntervalMs
  for (;;) {
    const answer = await check()
    if (done(answer)) return answer
    if (Date.now() > deadline) throw new Error(timedOut(what, ms, options))
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}

/**
 * Checks `check` until it answers something other than `undefined` or `false` and returns that
 * answer; after `ms` it fails naming `what` (an Effect dies, a Promise rejects). A check that
 * fails or throws ends the wait at once with its own error: that is how a wait gives up early,
 * e.g. when the process it waits for has exited.
 */
export function waitUntil<A, E, R>(
  what: string,
  check: Effect.Effect<Answer<A>, E, R>,
  ms: number,
  options?: Options
): Effect.Effect<Found<A>, E, R>
export function waitUntil<A>(
  what: string,
  check: () => Answer<A> | Promise<Answer<A>>,
  ms: number,
  options?: Options
): Promise<Found<A>>
export function waitUntil<A, E, R>(
  what: string,
  check: Effect.Effect<Answer<A>, E, R> | (() => Answer<A> | Promise<Answer<A>>),
  ms: number,
  options?: Options
): Effect.Effect<Found<A>, E, R> | Promise<Found<A>> {
  return Effect.isEffect(check) ? waitEffect(what, check, ms, options) : waitPromise(what, check, ms, options)
}
