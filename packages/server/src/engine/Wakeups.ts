/**
 * Wake-ups for idle workers: one connection per process LISTENs on the job engine's ready
 * channel and calls the waiters of each queue named on it, so a job is taken as soon as its
 * transaction commits, not at the next poll. The connection is watched: one that errs, ends, or
 * does not answer a probe in time (a partition holds a TCP connection open and silent) is dropped
 * and made again a second later, for as long as it takes. Notifications sent
 * while it was down are lost, so every waiter is woken once it is back; the poll remains the
 * floor under all of this.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import pg from "pg"

/** The waiters of a process, by queue. */
export interface Wakeups {
  /** Calls `wake` whenever a job of `queue` may be ready (and after every reconnection) until the scope closes. */
  readonly on: (queue: string, wake: () => void) => Effect.Effect<void, never, Scope.Scope>
  /** Whether the listening connection is up now. */
  readonly listening: () => boolean
}

/** How the listening connection is watched. */
export interface WakeupOptions {
  /** How often the connection is probed (default 5 s). */
  readonly probeInterval?: Duration.DurationInput
  /** A probe or a connect not answered within this long drops the connection (default 10 s). */
  readonly probeTimeout?: Duration.DurationInput
}

/** Waiters that nobody wakes: for a process whose database client cannot listen. */
export const none: Wakeups = { on: () => Effect.void, listening: () => false }

const within = <A>(ms: number, what: string, p: Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not answered within ${ms} ms`)), ms)
    p.then((a) => (clearTimeout(timer), resolve(a)), (e) => (clearTimeout(timer), reject(e)))
  })

/**
 * Listens on `channel` with connections made by `connect` until the scope closes, reconnecting
 * by itself; the connection's life (connect, LISTEN, probes, end) runs in one background fiber.
 */
export const make = (
  channel: string,
  connect: () => pg.Client,
  options: WakeupOptions = {}
): Effect.Effect<Wakeups, never, Scope.Scope> =>
  Effect.gen(function* () {
    const probeMs = Duration.toMillis(options.probeInterval ?? Duration.seconds(5))
    const timeoutMs = Duration.toMillis(options.probeTimeout ?? Duration.seconds(10))
    const waiters = new Map<string, Set<() => void>>()
    let up = false
    const wakeAll = () => {
      for (const set of waiters.values()) for (const wake of set) wake()
    }
    const onNotification = (msg: pg.Notification) => {
      if (msg.channel !== channel || msg.payload === undefined) return
      for (const wake of waiters.get(msg.payload) ?? []) wake()
    }
    /** One connection's life: resolves or rejects when it is lost. */
    const session = Effect.acquireUseRelease(
      Effect.tryPromise(async () => {
        const client = connect()
        // an error with no listener would end the process; the probe notices the loss
        client.on("error", () => {})
        await within(timeoutMs, "connect", client.connect())
        return client
      }),
      (client) =>
        Effect.tryPromise(async () => {
          const lost = new Promise<never>((_, reject) => {
            client.once("end", () => reject(new Error("the listening connection ended")))
            client.once("error", (e) => reject(e))
          })
          lost.catch(() => {})
          client.on("notification", onNotification)
          await within(timeoutMs, "LISTEN", Promise.race([client.query(`LISTEN ${pg.escapeIdentifier(channel)}`), lost]))
          up = true
          // what was sent while no connection listened is found now
          wakeAll()
          for (;;) {
            await Promise.race([new Promise((r) => setTimeout(r, probeMs)), lost])
            await within(timeoutMs, "probe", Promise.race([client.query("select 1"), lost]))
          }
        }),
      (client) =>
        Effect.sync(() => {
          up = false
          client.off("notification", onNotification)
          // end() waits for the server, which may be away: the socket is dropped instead
          ;(client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.()
          void client.end().catch(() => {})
        })
    )
    yield* session.pipe(
      Effect.catchAllCause((cause) => Effect.logDebug("job engine: the wake-up connection was lost; making it again", cause)),
      Effect.repeat(Schedule.spaced("1 second")),
      Effect.forkScoped
    )
    return {
      on: (queue, wake) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const set = waiters.get(queue) ?? new Set()
            set.add(wake)
            waiters.set(queue, set)
          }),
          () => Effect.sync(() => void waiters.get(queue)?.delete(wake))
        ),
      listening: () => up
    } satisfies Wakeups
  })
