/**
 * A durable, ordered outbox for filings: when the server or the network is down, a filing is
 * written to a local file and delivered later, in the order it was made, exactly once.
 *
 * - `enqueue` returns only once the item is on disk (written and fsynced), so a filing the
 *   caller was told about survives a crash or a power cut.
 * - One item is delivered at a time, oldest first (an observation before the files added to
 *   it), and removed only after the server confirmed it. A process killed at any instant
 *   redelivers at most the item that was in flight, which the server takes as an idempotent
 *   re-file: each filing arrives once.
 * - Transient failures (network, timeouts, 408, 429, 5xx) are retried with capped, jittered
 *   exponential backoff for as long as it takes. A token the server refuses (401, 403) holds
 *   the queue until it is fixed. Any other refusal (a 409 conflict, a 422) moves the item to the
 *   dead letters with the server's reason, so one bad filing never blocks those behind it.
 * - A lock file keeps a second process from draining the same outbox; a lock left by a killed
 *   process is taken over.
 * - Every record carries its length and a checksum: a record torn by a crash mid-append is
 *   dropped on the next open (its `enqueue` never returned), damage elsewhere is set aside in a
 *   `corrupt-*.bin` file and reported.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as LockFile from "./internal/LockFile.js"
import * as OutboxLog from "./internal/OutboxLog.js"
import * as RecordLog from "./internal/RecordLog.js"
import * as RetryPolicy from "./RetryPolicy.js"

/** A failure of the outbox itself (not of a delivery): it could not lock, read or write its files. */
export class OutboxError extends Schema.TaggedError<OutboxError>()("OutboxError", {
  reason: Schema.Literal("Locked", "Io", "Encode", "Closed"),
  directory: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `outbox ${this.directory}: ${this.reason}: ${this.detail}`
  }
}

/** One queued item as the outbox knows it. */
export interface Entry {
  /** Made by the outbox at enqueue; also sent as the `Idempotency-Key` of filings. */
  readonly id: string
  /** The caller's name for the item (e.g. the observation's id), shown in status and dead letters. */
  readonly key?: string | undefined
  readonly enqueuedAt: string
}

/** An item the server refused for good, with its reason; kept so a person can fix and re-file it. */
export interface DeadLetter<A> extends Entry {
  readonly deadAt: string
  readonly status?: number | undefined
  readonly reason: string
  readonly attempts: number
  /** The item, or `undefined` when it no longer decodes with the schema. */
  readonly item: A | undefined
  /** The item as stored (the schema's encoded form). */
  readonly stored: unknown
}

/** The last failed delivery attempt. */
export interface LastError {
  readonly at: string
  readonly key?: string | undefined
  readonly verdict: RetryPolicy.Verdict
  readonly status?: number | undefined
  readonly reason: string
}

/** What an operator needs to see: how much waits, why it waits, what was given up. */
export interface Status {
  readonly directory: string
  readonly pending: number
  /** The item being delivered and how many attempts it took so far. */
  readonly inFlight?: { readonly entry: Entry; readonly attempts: number } | undefined
  /** Items confirmed by the server since this outbox was opened. */
  readonly delivered: number
  readonly deadLetters: number
  readonly lastError?: LastError | undefined
  /** What opening found after a crash or damage: bytes of a torn tail dropped, damaged ranges set aside. */
  readonly recovered: { readonly tornBytes: number; readonly corruptRanges: number }
  /** Delivery stopped because another process took the lock over. */
  readonly lockLost: boolean
}

/** How to open an outbox. */
export interface Options<A, I, R> {
  /** The outbox's own folder; made if missing. */
  readonly directory: string
  /** Items are stored in this schema's encoded form (JSON), so they survive a restart typed. */
  readonly schema: Schema.Schema<A, I, never>
  /** Sends one item; succeeding means the server confirmed it. Without it, the outbox only stores. */
  readonly deliver?: ((item: A, entry: Entry) => Effect.Effect<unknown, unknown, R>) | undefined
  /** How failures are judged (default `RetryPolicy.judge`). */
  readonly judge?: ((error: unknown) => RetryPolicy.Judgement) | undefined
  /** Backoff between attempts at one item (its `times` is ignored: the outbox never gives up). */
  readonly retry?: RetryPolicy.Options | undefined
  /** One attempt longer than this is a transient failure (default 30 s). */
  readonly attemptTimeout?: Duration.DurationInput | undefined
  /** How long to wait for another process's lock before failing with `Locked` (default: not at all). */
  readonly waitForLock?: Duration.DurationInput | undefined
  /** Rewrite the log once this many delivered records outweigh the pending ones (default 1000). */
  readonly compactAfter?: number | undefined
}

/** An open outbox. */
export interface Outbox<A> {
  readonly directory: string
  /** Appends an item; returns once it is durably on disk. */
  readonly enqueue: (item: A, options?: { readonly key?: string | undefined }) => Effect.Effect<Entry, OutboxError>
  /** Appends several items in order with one fsync. */
  readonly enqueueAll: (
    items: ReadonlyArray<{ readonly item: A; readonly key?: string | undefined }>
  ) => Effect.Effect<ReadonlyArray<Entry>, OutboxError>
  /** Items not yet confirmed, the one in flight included. */
  readonly pending: Effect.Effect<number>
  readonly status: Effect.Effect<Status>
  readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter<A>>, OutboxError>
  /** Waits until nothing is pending; `false` if the timeout passed first. */
  readonly flush: (timeout?: Duration.DurationInput) => Effect.Effect<boolean>
  /** Ends the current backoff and tries again now (e.g. when the caller knows the link is back). */
  readonly wake: Effect.Effect<void>
}

interface State {
  /** Oldest first; the head is the one being delivered. */
  readonly pending: Chunk.Chunk<OutboxLog.StoredItem>
  readonly inFlight?: { readonly entry: Entry; readonly attempts: number } | undefined
  readonly delivered: number
  readonly deadLetters: number
  readonly lastError?: LastError | undefined
  readonly lockLost: boolean
}

/** Opens the outbox in a folder: locks it, recovers it, and starts delivering if `deliver` is given. */
export const make = <A, I, R = never>(options: Options<A, I, R>): Effect.Effect<Outbox<A>, OutboxError, Scope.Scope | R> =>
  Effect.gen(function* () {
    const directory = path.resolve(options.directory)
    const { dead: deadFile, lock: lockFile, log: logFile } = OutboxLog.files(directory)
    const io = <T>(what: string, f: () => Promise<T>) =>
      Effect.tryPromise({ try: f, catch: (e) => new OutboxError({ reason: "Io", directory, detail: `${what}: ${String(e)}` }) })
    const judge = options.judge ?? RetryPolicy.judge
    const compactAfter = options.compactAfter ?? 1000

    yield* io("make folder", async () => {
      await fs.mkdir(directory, { recursive: true })
      await RecordLog.syncDirectory(path.dirname(directory))
    })
    const owner = yield* acquireLock(directory, lockFile, options.waitForLock)
    yield* Effect.addFinalizer(() => Effect.promise(() => LockFile.release(lockFile, owner).catch(() => undefined)))

    const recovered = yield* io("recover", () => OutboxLog.recover(directory))
    const state = yield* SubscriptionRef.make<State>({
      pending: Chunk.fromIterable(recovered.pending),
      delivered: 0,
      deadLetters: recovered.deadLetters,
      lockLost: false
    })
    const mutex = yield* Effect.makeSemaphore(1)
    const closed = yield* Ref.make(false)
    const acknowledged = yield* Ref.make(recovered.acknowledged)
    // Every change of the log happens under the mutex and cannot be interrupted halfway, and the
    // in-memory queue changes with it, so log order is queue order and a compaction never misses
    // an item appended while it ran.
    const locked = <T>(effect: Effect.Effect<T, OutboxError>) => mutex.withPermits(1)(Effect.uninterruptible(effect))

    const compactIfWorth = locked(Effect.gen(function* () {
      const [n, s] = [yield* Ref.get(acknowledged), yield* SubscriptionRef.get(state)]
      if (n < compactAfter || n < Chunk.size(s.pending)) return
      yield* io("compact", () => OutboxLog.compact(logFile, s.pending))
      yield* Ref.set(acknowledged, 0)
    }))
    yield* compactIfWorth

    const encode = Schema.encode(options.schema)
    const enqueueAll = Effect.fn("Outbox.enqueue")(
      function* (items: ReadonlyArray<{ readonly item: A; readonly key?: string | undefined }>) {
        if (yield* Ref.get(closed)) return yield* new OutboxError({ reason: "Closed", directory, detail: "the outbox was closed" })
        if ((yield* SubscriptionRef.get(state)).lockLost) {
          return yield* new OutboxError({ reason: "Locked", directory, detail: "another process took the lock over" })
        }
        const now = new Date(yield* Clock.currentTimeMillis).toISOString()
        const pending: Array<OutboxLog.StoredItem> = []
        for (const { item, key } of items) {
          const stored = yield* encode(item).pipe(
            Effect.mapError((e) => new OutboxError({ reason: "Encode", directory, detail: e.message }))
          )
          pending.push({ entry: { id: randomUUID(), key, enqueuedAt: now }, stored })
        }
        yield* locked(
          io("append", () => RecordLog.append(logFile, pending.map(OutboxLog.itemRecord))).pipe(
            Effect.zipRight(
              SubscriptionRef.update(state, (s) => ({ ...s, pending: Chunk.appendAll(s.pending, Chunk.unsafeFromArray(pending)) }))
            )
          )
        )
        return pending.map((p) => p.entry)
      }
    )

    const wakeRef = yield* Ref.make(yield* Deferred.make<void>())
    const wake = Effect.gen(function* () {
      const woken = yield* Ref.getAndSet(wakeRef, yield* Deferred.make<void>())
      yield* Deferred.succeed(woken, undefined)
    })

    const outbox: Outbox<A> = {
      directory,
      enqueue: (item, o) => Effect.map(enqueueAll([{ item, key: o?.key }]), (entries) => entries[0]!),
      enqueueAll,
      pending: Effect.map(SubscriptionRef.get(state), (s) => Chunk.size(s.pending)),
      status: Effect.map(SubscriptionRef.get(state), (s) => ({
        directory,
        pending: Chunk.size(s.pending),
        inFlight: s.inFlight,
        delivered: s.delivered,
        deadLetters: s.deadLetters,
        lastError: s.lastError,
        recovered: { tornBytes: recovered.tornBytes, corruptRanges: recovered.corruptRanges },
        lockLost: s.lockLost
      })),
      deadLetters: Effect.map(io("read dead letters", () => OutboxLog.readDeadLetters(deadFile)), (records) =>
        records.map((r) => ({
          id: r.id,
          key: r.key,
          enqueuedAt: r.at,
          deadAt: r.deadAt,
          status: r.status,
          reason: r.reason,
          attempts: r.attempts,
          item: Option.getOrUndefined(Schema.decodeUnknownOption(options.schema)(r.item)),
          stored: r.item
        }))),
      flush: (timeout) => {
        const empty = state.changes.pipe(Stream.filter((s) => Chunk.isEmpty(s.pending)), Stream.runHead, Effect.as(true))
        return timeout === undefined ? empty : Effect.map(Effect.timeoutOption(empty, timeout), Option.getOrElse(() => false))
      },
      wake
    }
    yield* Effect.addFinalizer(() => Ref.set(closed, true))

    if (options.deliver !== undefined) {
      const deliver = options.deliver
      // Only the head is ever delivered, so acknowledging it drops the head of the queue.
      const ack = (p: OutboxLog.StoredItem, record: OutboxLog.LogRecord) =>
        locked(
          io("acknowledge", () => RecordLog.append(logFile, [OutboxLog.json(record)])).pipe(
            Effect.zipRight(SubscriptionRef.update(state, (s) => ({
              ...s,
              pending: Chunk.drop(s.pending, 1),
              inFlight: undefined,
              delivered: s.delivered + (record.t === "done" ? 1 : 0),
              deadLetters: s.deadLetters + (record.t === "dead" ? 1 : 0)
            })))
          )
        ).pipe(Effect.zipRight(Ref.update(acknowledged, (n) => n + 1)), Effect.zipRight(compactIfWorth))

      const attemptOnce = (p: OutboxLog.StoredItem) =>
        Schema.decodeUnknown(options.schema)(p.stored).pipe(
          Effect.flatMap((item) => deliver(item, p.entry)),
          Effect.timeoutFail({
            duration: options.attemptTimeout ?? "30 seconds",
            onTimeout: () => new Cause.TimeoutException("the server did not answer in time")
          }),
          Effect.exit
        )

      const deliverOne = Effect.fn("Outbox.deliverOne")(
        function* (p: OutboxLog.StoredItem) {
          const driver = yield* Schedule.driver(RetryPolicy.schedule(options.retry))
          for (let attempts = 1;; attempts++) {
            if (!(yield* Effect.promise(() => LockFile.stillHeld(lockFile, owner)))) {
              yield* SubscriptionRef.update(state, (s) => ({ ...s, lockLost: true, inFlight: undefined }))
              return yield* Effect.interrupt
            }
            yield* SubscriptionRef.update(state, (s) => ({ ...s, inFlight: { entry: p.entry, attempts } }))
            const exit = yield* attemptOnce(p)
            if (Exit.isSuccess(exit)) return yield* ack(p, { t: "done", id: p.entry.id })
            if (Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
            const error = Cause.squash(exit.cause)
            const judgement = judge(error)
            const at = new Date(yield* Clock.currentTimeMillis).toISOString()
            yield* SubscriptionRef.update(state, (s) => ({ ...s, lastError: { at, key: p.entry.key, ...judgement } }))
            if (judgement.verdict === "Permanent") {
              const letter = {
                id: p.entry.id,
                key: p.entry.key,
                at: p.entry.enqueuedAt,
                deadAt: at,
                status: judgement.status,
                reason: judgement.reason,
                attempts,
                item: p.stored
              }
              yield* locked(io("write dead letter", () => RecordLog.append(deadFile, [OutboxLog.json(letter)])))
              return yield* ack(p, { t: "dead", id: p.entry.id })
            }
            // An outage means many attempts: warn on the first and every tenth, the rest at debug level.
            const log = attempts === 1 || attempts % 10 === 0 ? Effect.logWarning : Effect.logDebug
            yield* Effect.annotateLogs(log(`delivery failed (${judgement.verdict}), will retry: ${judgement.reason}`), {
              key: p.entry.key ?? p.entry.id,
              attempts
            })
            const woken = yield* Ref.get(wakeRef)
            yield* Effect.raceFirst(Effect.ignore(driver.next(error)), Deferred.await(woken))
          }
        }
      )

      const waitForWork = state.changes.pipe(Stream.filter((s) => Chunk.isNonEmpty(s.pending)), Stream.runHead, Effect.map(() => undefined))
      const loop = Effect.forever(Effect.gen(function* () {
        yield* waitForWork
        const head = Chunk.head((yield* SubscriptionRef.get(state)).pending)
        if (Option.isNone(head)) return
        // The outbox's own files failed (a full disk): the item stays queued, try again shortly.
        yield* deliverOne(head.value).pipe(Effect.catchTag("OutboxError", (e) =>
          Effect.gen(function* () {
            const at = new Date(yield* Clock.currentTimeMillis).toISOString()
            yield* SubscriptionRef.update(state, (s) => ({
              ...s,
              inFlight: undefined,
              lastError: { at, key: head.value.entry.key, verdict: "Transient" as const, reason: e.message }
            }))
            yield* Effect.logError(e.message)
            yield* Effect.sleep("1 second")
          })))
      }))
      yield* Effect.forkScoped(Effect.withSpan(loop, "Outbox.deliver"))
    }
    return outbox
  })

const acquireLock = (directory: string, lockFile: string, waitFor: Duration.DurationInput | undefined) =>
  Effect.gen(function* () {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(waitFor ?? 0)
    for (;;) {
      const attempt = yield* Effect.tryPromise({
        try: () => LockFile.tryAcquire(lockFile),
        catch: (e) => new OutboxError({ reason: "Io", directory, detail: `lock: ${String(e)}` })
      })
      if (attempt._tag === "Acquired") return attempt.owner
      if ((yield* Clock.currentTimeMillis) >= deadline) {
        const o = attempt.owner
        return yield* new OutboxError({
          reason: "Locked",
          directory,
          detail: `in use by process ${o.pid} on ${o.host} since ${o.acquiredAt}; if that process is gone, remove ${lockFile}`
        })
      }
      yield* Effect.sleep("100 millis")
    }
  })
