/**
 * `Idempotency-Key` on POST (and PUT, PATCH, DELETE) requests: the first request with a key runs
 * and its answer (status, content type, body) is recorded with a SHA-256 of the request (method,
 * path, caller, body); a retry with the same key and the same request is answered from the
 * record without running again (header `Idempotent-Replayed: true`); the same key with another
 * request is a 422 naming the key and changes nothing. Keys are scoped to the caller, so two
 * callers never see each other's answers.
 *
 * A keyed request runs in ONE transaction with its record: the claim of the key, everything the
 * request writes, and its recorded answer commit together or not at all, before the answer is
 * sent. So a process killed after the commit has recorded what it did (a retry is answered from
 * the record, never run twice), and one killed before it has done nothing (a retry runs afresh,
 * with no lease to wait out). A concurrent request with the same key waits on the first one's uncommitted claim (at
 * most `wait`, then a 503 with Retry-After) and replays its answer. A committed `running` claim
 * (left by a process that claimed outside the request's transaction) is waited on the same way
 * and taken over once its lease has passed. Answers that a retry should run again are not
 * recorded: server errors (5xx), 401, 403, 408, 429 and 499 (the caller hung up); the whole
 * transaction is rolled back then, the claim with whatever the request wrote. A 499 recorded
 * by an earlier release is never replayed: the next request with its key runs.
 *
 * It wraps the whole HTTP app (outside the contract's routing), because it must see the final
 * response, errors encoded, to record it; the caller is resolved by a function the server passes
 * (the main's token table, a relay's synced copy of it).
 */
import { ApiErrors } from "@ccat/core"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { createHash, randomUUID } from "node:crypto"

/** The header, as Node lower-cases it. */
export const header = "idempotency-key"

/** The header set on an answer that was replayed from the record rather than run. */
export const replayedHeader = "idempotent-replayed"

/** What a key may be: 1 to 128 letters, digits and `. _ : -` (a UUID is one). */
export const keyPattern = /^[A-Za-z0-9._:-]{1,128}$/

/** How the middleware behaves, and where it keeps its records. */
export interface Options {
  /** The table of records, possibly schema-qualified (`relay.idempotency_key`). */
  readonly table: string
  /** How long a key is remembered after its request. */
  readonly retention: Duration.DurationInput
  /** How long a running claim holds before another request with the same key may take it over. */
  readonly lease: Duration.DurationInput
  /** How long a concurrent request waits for the first one's answer before a 503 with Retry-After. */
  readonly wait: Duration.DurationInput
  /** The largest body it reads to hash, in bytes (the API's body limit). */
  readonly maxBodyBytes: number
  /** The caller, or none when the request has no valid credentials (it then runs unkeyed and is refused by the API). */
  readonly scopeOf: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Option.Option<Caller>, never, SqlClient.SqlClient>
}

/** Who sent a keyed request, as the middleware needs it. */
export interface Caller {
  /** The records' namespace for this caller (e.g. `account:<id>`). */
  readonly scope: string
  /** Runs first in the request's transaction, before the app (e.g. to mark what the request writes as relayed). */
  readonly begin?: Effect.Effect<void, never, SqlClient.SqlClient> | undefined
}

/** The first request's uncommitted claim held the key longer than the middleware waits. */
class KeyBusy extends Data.TaggedError("KeyBusy") {}

/** The key is held by a committed claim or answer: the attempt's savepoint is rolled back. */
class NotClaimed extends Data.TaggedError("NotClaimed") {}

/** PostgreSQL's `lock_not_available`, raised when `lock_timeout` passes. */
const isLockTimeout = (e: { readonly cause?: unknown }) => (e.cause as { code?: unknown } | undefined)?.code === "55P03"

const keyedMethods = new Set(["POST", "PUT", "PATCH", "DELETE"])

/** Statuses a retry should run again rather than replay. */
/** Answers a retry should run again; 499 is the server's own answer to a caller that hung up mid-request. */
const unrecorded = new Set([401, 403, 408, 429, 499])

const recordable = (status: number) => status < 500 && !unrecorded.has(status)

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(body, { status, headers })

const badKey = (message: string) => {
  const e = new ApiErrors.BadRequest({ reason: "IdempotencyKey", message })
  return json(400, { _tag: e._tag, reason: e.reason, message: e.message })
}

const reused = (key: string, method: string, path: string) =>
  json(422, {
    _tag: "Unprocessable",
    reason: "IdempotencyKeyReused",
    field: "Idempotency-Key",
    message:
      `the Idempotency-Key ${key} was already used by this caller with a different request (${method} ${path}); use a fresh key for a new request`
  })

const busy = (key: string) =>
  json(
    503,
    { _tag: "NotReady", reason: `a request with the Idempotency-Key ${key} is still running; retry shortly to get its answer` },
    { "retry-after": "1" }
  )

interface Row {
  readonly requestSha256: string
  readonly method: string
  readonly path: string
  readonly state: "running" | "done"
  readonly statusCode: number | null
  readonly contentType: string | null
  readonly body: Uint8Array | null
}

/** Checks a presented key: undefined when usable, else why not. */
export const keyProblem = (key: string): string | undefined =>
  keyPattern.test(key)
    ? undefined
    : key.length === 0
    ? "the Idempotency-Key header is empty; send one key per logical request (a UUID), or leave the header out"
    : key.length > 128
    ? `the Idempotency-Key is ${key.length} characters long; at most 128 are accepted (a UUID is 36)`
    : "the Idempotency-Key may hold only letters, digits and . _ : - (one key per request, e.g. a UUID)"

const replay = (row: Row) =>
  HttpServerResponse.uint8Array(row.body ?? new Uint8Array(), {
    status: row.statusCode!,
    ...(row.contentType === null ? {} : { contentType: row.contentType }),
    headers: { [replayedHeader]: "true" }
  })

/** The middleware, for `HttpApiBuilder.serve` (inside the request logger). */
export const middleware = (options: Options) => {
  const retentionMs = Duration.toMillis(options.retention)
  const leaseMs = Duration.toMillis(options.lease)
  const waitMs = Duration.toMillis(options.wait)
  return <E, R>(app: HttpApp.Default<E, R>) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const presented = request.headers[header]
      if (presented === undefined || !keyedMethods.has(request.method)) return yield* app
      const problem = keyProblem(presented)
      if (problem !== undefined) return badKey(problem)
      const caller = yield* options.scopeOf(request)
      if (Option.isNone(caller)) return yield* app
      const scope = caller.value.scope
      const length = Number(request.headers["content-length"] ?? "0")
      if (Number.isFinite(length) && length > options.maxBodyBytes) return yield* app
      // The body is read once and cached by the request, so the API reads the same text; an
      // unreadable body is left for the API to refuse (its answer is not recorded).
      const body = yield* request.text.pipe(HttpIncomingMessage.withMaxBodySize(Option.some(options.maxBodyBytes)), Effect.option)
      if (Option.isNone(body)) return yield* app
      const hash = createHash("sha256").update(`${request.method}\n${request.url}\n${scope}\n`).update(body.value).digest("hex")
      const sql = yield* SqlClient.SqlClient
      const table = sql(options.table)
      const claim = randomUUID()
      const tryClaim = sql<{ claim: string }>`
        insert into ${table} (scope, key, request_sha256, method, path, state, claim, lease_until, expires_at)
        values (${scope}, ${presented}, ${hash}, ${request.method}, ${request.url}, 'running', ${claim},
                now() + ${leaseMs} * interval '1 millisecond', now() + ${retentionMs} * interval '1 millisecond')
        on conflict (scope, key) do update set
          request_sha256 = excluded.request_sha256, method = excluded.method, path = excluded.path, state = 'running',
          claim = excluded.claim, lease_until = excluded.lease_until, status_code = null, content_type = null, body = null,
          created_at = now(), completed_at = null, expires_at = excluded.expires_at
        where ${table}.expires_at <= now()
           or (${table}.state = 'running' and ${table}.lease_until <= now() and ${table}.request_sha256 = excluded.request_sha256)
           or (${table}.state = 'done' and ${table}.status_code = 499)
        returning claim`.pipe(Effect.mapError((e) => (isLockTimeout(e) ? new KeyBusy() : e)))
      const read = sql<Row>`
        select request_sha256, method, path, state, status_code, content_type, body from ${table}
        where scope = ${scope} and key = ${presented} and expires_at > now()`
      // In a savepoint: an insert that meets a committed row locks it even when it does not take
      // it over, and waiting with that lock would keep its owner from recording its answer.
      const claimOnce = sql.withTransaction(
        Effect.flatMap(tryClaim, (rows) => (rows.length > 0 ? Effect.succeed(true) : Effect.fail(new NotClaimed())))
      ).pipe(Effect.catchIf((e): e is NotClaimed => e instanceof NotClaimed, () => Effect.succeed(false)))
      const deadline = Date.now() + waitMs
      const run = Effect.gen(function* () {
        // Waiting on another request's uncommitted claim is bounded by the same wait; the app's own locks are not.
        const [{ previous }] = yield* sql<{ previous: string }>`select current_setting('lock_timeout') as previous`
        yield* sql`select set_config('lock_timeout', ${`${Math.max(1, waitMs)}ms`}, true)`
        // Claim the key, or answer from (or wait for) the request that holds it.
        while (true) {
          if (yield* claimOnce) break
          const [row] = yield* read
          if (row === undefined) {
            // Released or expired in between: claim it again, within the same bound.
            if (Date.now() >= deadline) return busy(presented)
            continue
          }
          if (row.requestSha256 !== hash) return reused(presented, row.method, row.path)
          if (row.state === "done") return replay(row)
          if (Date.now() >= deadline) return busy(presented)
          yield* Effect.sleep(Duration.millis(50))
        }
        yield* sql`select set_config('lock_timeout', ${previous}, true)`
        if (caller.value.begin !== undefined) yield* caller.value.begin
        // The server sends the answer as soon as the app has it, before this transaction would
        // end; so the record is written and the transaction committed just before it leaves (the
        // transaction goes on empty until the app returns). Once only: a failed commit turns the
        // answer into a 500, which comes back through here and leaves as it is.
        let committed = false
        const recordThenCommit = (_request: HttpServerRequest.HttpServerRequest, response: HttpServerResponse.HttpServerResponse) =>
          Effect.gen(function* () {
            if (committed) return response
            committed = true
            const b = response.body
            if (!recordable(response.status) || (b._tag !== "Uint8Array" && b._tag !== "Empty")) {
              // Nothing of an answer that is run again is kept: neither the claim nor what the
              // request wrote before it failed or its caller hung up (else a retry would find half of it).
              yield* sql.unsafe("rollback").unprepared
              yield* sql.unsafe("begin").unprepared
              return response
            } else {
              const bytes = b._tag === "Uint8Array" ? b.body : new Uint8Array()
              const contentType = b._tag === "Uint8Array" ? b.contentType : null
              yield* sql`
                update ${table} set state = 'done', status_code = ${response.status}, content_type = ${contentType},
                  body = ${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)}, completed_at = now(), lease_until = null
                where scope = ${scope} and key = ${presented} and claim = ${claim}`
            }
            yield* sql.unsafe("commit").unprepared
            yield* sql.unsafe("begin").unprepared
            return response
          }).pipe(Effect.orDie)
        return yield* HttpApp.withPreResponseHandler(app, recordThenCommit)
      })
      // A failure or an interruption rolls the claim back with whatever the request wrote.
      return yield* sql.withTransaction(run).pipe(
        Effect.catchIf((e): e is KeyBusy => e instanceof KeyBusy, () => Effect.succeed(busy(presented)))
      )
    }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e)))
}

/** Deletes expired records now; returns how many. */
export const purge = (table: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ n: number }>`with d as (delete from ${sql(table)} where expires_at <= now() returning 1) select count(*)::int as n from d`
  ).pipe(Effect.map((rows) => rows[0]?.n ?? 0))

/** Purges expired records every `every`, for as long as the scope lives; a failed pass is logged and tried again next time. */
export const purgeEvery = (table: string, every: Duration.DurationInput) =>
  purge(table).pipe(
    Effect.tapErrorCause((cause) => Effect.logWarning("idempotency key purge failed; trying again later", cause)),
    Effect.ignore,
    Effect.repeat(Schedule.spaced(every)),
    Effect.forkScoped,
    Effect.asVoid
  )
