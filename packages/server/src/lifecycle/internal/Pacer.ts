/**
 * An I/O budget in bytes per second, held by pacing: a reader reports the bytes it just read and
 * waits until they fit the budget. At any instant the bytes taken are at most
 * `bytesPerSecond × elapsed` plus the last part read, and time a slow read lost is made up for at
 * most `burst` later (so a stalled device does not turn into a full-speed burst afterwards).
 * Time comes from Effect's Clock, so a test drives it with TestClock instead of sleeping.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** A budget being spent. */
export interface Pacer {
  /** Counts bytes just read and waits until they fit the budget. */
  readonly take: (bytes: number) => Effect.Effect<void>
  /** Bytes taken so far. */
  readonly taken: () => number
  /** Milliseconds since the pacer started, by the Effect clock. */
  readonly elapsedMillis: Effect.Effect<number>
}

/** A pacer for `bytesPerSecond` (a non-positive or infinite budget never waits). */
export const make = (bytesPerSecond: number, burst: Duration.DurationInput = Duration.seconds(1)): Effect.Effect<Pacer> =>
  Effect.map(Clock.currentTimeMillis, (started) => {
    const burstMillis = Duration.toMillis(burst)
    const unlimited = !(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)
    // the instant from which the budget is counted; moved forward when unused credit would exceed a burst
    let base = started
    let taken = 0
    let counted = 0
    const take = (bytes: number) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        taken += bytes
        if (unlimited) return Effect.void
        counted += bytes
        const fits = base + (counted / bytesPerSecond) * 1000
        if (fits < now - burstMillis) base += now - burstMillis - fits
        const wait = base + (counted / bytesPerSecond) * 1000 - now
        return wait > 0 ? Effect.sleep(Duration.millis(wait)) : Effect.void
      })
    return {
      take,
      taken: () => taken,
      elapsedMillis: Effect.map(Clock.currentTimeMillis, (now) => now - started)
    }
  })
