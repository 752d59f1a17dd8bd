/**
 * `Idempotency-Key` on POST (and PUT, PATCH, DELETE) requests: the first request with a key runs
 * and its answer (status, content type, body) is recorded with a SHA-256 of the request (method,
 * path, caller, body); a retry with the same key and the same request is answered from the
 * record without running again (header `Idempotent-Replayed: true`); the same key with another
 * request is a 422 naming the key and changes nothing. Keys are scoped to the caller, so two
 * callers never see each other's answers.
 *
 * A request claims its key with one insert (`running`, with a lease); a concurrent request with
 * the same key waits for the first one's answer and replays it, so the two never both run; a
 * claim left by a killed process is taken over once its lease has passed. Answers that a retry
 * should run again are not recorded: server errors (5xx), 401, 403, 408 and 429. The key is
 * released then, as it is when the request fails or is interrupted.
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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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
  /** The caller's scope (e.g. `account:<id>`), or none when the request has no valid credentials (it then runs unkeyed and is refused by the API). */
  readonly scopeOf: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Option.Option<string>, never, SqlClient.SqlClient>
}

const keyedMethods = new Set(["POST", "PUT", "PATCH", "DELETE"])

/** Statuses a retry should run again rather than replay. */
const unrecorded = new Set([401, 403, 408, 429])

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
    message: `the Idempotency-Key ${key} was already used by this caller with a different request (${method} ${path}); use a fresh key for a new request`
  })

const busy = (key: string) =>
  json(503, { _tag: "NotReady", reason: `a request with the Idempotency-Key ${key} is still running; retry shortly to get its answer` }, { "retry-after": "1" })

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
      const scope = yield* options.scopeOf(request)
      if (Option.isNone(scope)) return yield* app
      const length = Number(request.headers["content-length"] ?? "0")
      if (Number.isFinite(length) && length > options.maxBodyBytes) return yield* app
      // The body is read once and cached by the request, so the API reads the same text; an
      // unreadable body is left for the API to refuse (its answer is not recorded).
      const body = yield* request.text.pipe(HttpIncomingMessage.withMaxBodySize(Option.some(options.maxBodyBytes)), Effect.option)
      if (Option.isNone(body)) return yield* app
      const hash = createHash("sha256").update(`${request.method}\n${request.url}\n${scope.value}\n`).update(body.value).digest("hex")
      const sql = yield* SqlClient.SqlClient
      const table = sql(options.table)
      const claim = randomUUID()
      const tryClaim = sql<{ claim: string }>`
        insert into ${table} (scope, key, request_sha256, method, path, state, claim, lease_until, expires_at)
        values (${scope.value}, ${presented}, ${hash}, ${request.method}, ${request.url}, 'running', ${claim},
                now() + ${leaseMs} * interval '1 millisecond', now() + ${retentionMs} * interval '1 millisecond')
        on conflict (scope, key) do update set
          request_sha256 = excluded.request_sha256, method = excluded.method, path = excluded.path, state = 'running',
          claim = excluded.claim, lease_until = excluded.lease_until, status_code = null, content_type = null, body = null,
          created_at = now(), completed_at = null, expires_at = excluded.expires_at
        where ${table}.expires_at <= now()
           or (${table}.state = 'running' and ${table}.lease_until <= now() and ${table}.request_sha256 = excluded.request_sha256)
        returning claim`
      const read = sql<Row>`
        select request_sha256, method, path, state, status_code, content_type, body from ${table}
        where scope = ${scope.value} and key = ${presented} and expires_at > now()`
      const deadline = Date.now() + waitMs
      // Claim the key, or answer from (or wait for) the request that holds it.
      while (true) {
        const claimed = yield* tryClaim
        if (claimed.length > 0) break
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
      const release = sql`delete from ${table} where scope = ${scope.value} and key = ${presented} and claim = ${claim}`.pipe(Effect.ignore)
      return yield* app.pipe(
        Effect.onExit((exit) => {
          if (Exit.isFailure(exit)) return release
          const response = exit.value
          const b = response.body
          if (!recordable(response.status) || (b._tag !== "Uint8Array" && b._tag !== "Empty")) return release
          const bytes = b._tag === "Uint8Array" ? b.body : new Uint8Array()
          const contentType = b._tag === "Uint8Array" ? b.contentType : null
          return sql`
            update ${table} set state = 'done', status_code = ${response.status}, content_type = ${contentType},
              body = ${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)}, completed_at = now(), lease_until = null
            where scope = ${scope.value} and key = ${presented} and claim = ${claim}`.pipe(Effect.ignore)
        })
      )
    }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e)))
}

/** Deletes expired records now; returns how many. */
export const purge = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
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
