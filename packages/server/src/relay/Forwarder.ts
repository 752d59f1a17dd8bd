/**
 * Forwarding the relay's backlog to the main, and pulling the main's reference data.
 *
 * Filings go one at a time in acceptance order, each under its own `Idempotency-Key` (the
 * filing's id at the relay), so a filing sent again after a lost answer, a relay killed
 * mid-request or a restart is a replay at the main: it arrives once. What the main answers:
 * - success: the filing is marked forwarded and the next one goes;
 * - a refusal (409, 422, 404, 400, 403 for an instrument grant): the filing is kept, marked
 *   refused with the main's status and reason, and the next one goes: a bad filing never holds
 *   back the ones behind it (the order is acceptance order, hence each observation's own order);
 * - anything that may pass (no link, the main restarting, 5xx, 429, the relay's own token
 *   refused with 401 or a role 403): the same filing is tried again after a capped, jittered
 *   exponential backoff (`RetryPolicy.schedule` of `@ccat/client`), reset by the next success.
 *
 * Connections: a request that gets no answer within `requestTimeout` is abandoned, and every
 * attempt after a failure goes out on a fresh connection pool (the old one destroyed), with a
 * connect that gives up after `connectTimeout`. After a long partition TCP's retransmission
 * backoff on an old socket (or on a SYN sent while the link was down) can reach two minutes
 * between tries; a fresh connection's first SYN goes out at once, so forwarding resumes within
 * about one backoff of the link's return. Each filing names the instrument's account it is
 * forwarded for (`CCAT-On-Behalf-Of`), which the main writes into the filing's events.
 */
import { ApiErrors } from "@ccat/core"
import { CcatClient, RetryPolicy } from "@ccat/client"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { ObservationsApi, type Ids } from "@ccat/core"
import { onBehalfOfHeader, onBehalfOfPattern } from "../http/IdempotencyLive.js"
import { path as referencePath, Reference } from "./Reference.js"
import * as RelayStore from "./RelayStore.js"

/** What the forwarder and the sync need. */
export interface Options {
  readonly mainUrl: string
  readonly token: string
  /** How long one forwarding request may take before it counts as lost. */
  readonly requestTimeout: Duration.DurationInput
  /** How long a TCP connect to the main may take before the attempt counts as failed. */
  readonly connectTimeout: Duration.DurationInput
  /** The longest wait between attempts while the main cannot be reached. */
  readonly maxBackoff: Duration.DurationInput
  /** How often the reference data and token hashes are pulled. */
  readonly syncInterval: Duration.DurationInput
}

/** A connection pool of its own: connects bounded by `connectTimeout`, idle sockets dropped after 4 s. */
const makePool = (options: Options) =>
  new Undici.Agent({ connect: { timeout: Duration.toMillis(options.connectTimeout) }, keepAliveTimeout: 4_000, keepAliveMaxTimeout: 4_000 })

/** Destroys a pool and every socket in it, without waiting on a dead peer. */
const destroyPool = (pool: Undici.Agent) => Effect.promise(() => pool.destroy().catch(() => undefined))

/** Runs `use` with an HTTP client on a fresh pool, destroyed afterwards (one reference pull). */
export const withFreshConnection = <A, E, R>(options: Options, use: (http: HttpClient.HttpClient) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(Effect.sync(() => makePool(options)), (pool) => use(NodeHttpClient.makeUndici(pool)), destroyPool)

/** The instrument's account a request is forwarded for, set around each send. */
const forwardedFor = FiberRef.unsafeMake<string | undefined>(undefined)

/** The derived client on a pool, naming the account each filing is forwarded for (a name no header can carry is left out, never a reason to stop forwarding). */
const clientOn = (options: Options, pool: Undici.Agent) =>
  CcatClient.make({
    baseUrl: options.mainUrl,
    token: options.token,
    retry: false,
    transformClient: HttpClient.mapRequestEffect((request) =>
      Effect.map(
        FiberRef.get(forwardedFor),
        (
          name
        ) => (name === undefined || !onBehalfOfPattern.test(name) ? request : HttpClientRequest.setHeader(request, onBehalfOfHeader, name))
      )
    )
  }).pipe(Effect.provideService(HttpClient.HttpClient, NodeHttpClient.makeUndici(pool)))

/** Sends one stored filing through the derived client, under its own key. */
const send = (client: CcatClient.Client, filing: RelayStore.Filing) => {
  const id = filing.observationId as Ids.ExecutedObsUnitId
  const call = filing.kind === "file"
    ? Effect.flatMap(
      Schema.decodeUnknown(ObservationsApi.FileObservation)(filing.payload),
      (payload) => Effect.asVoid(client.observations.file({ payload }))
    )
    : filing.kind === "addFiles"
    ? Effect.flatMap(
      Schema.decodeUnknown(ObservationsApi.AddFiles)(filing.payload),
      (payload) => Effect.asVoid(client.observations.addFiles({ path: { id }, payload }))
    )
    : Effect.flatMap(
      Schema.decodeUnknown(ObservationsApi.CloseObservation)(filing.payload),
      (payload) => Effect.asVoid(client.observations.close({ path: { id }, payload }))
    )
  return Effect.locally(CcatClient.idempotent(filing.id)(call), forwardedFor, filing.accountName)
}

/** The main's refusal in words an operator acts on: its error's tag, reason and message. */
const refusalText = (error: unknown, fallback: string): string => {
  const e = error as { _tag?: unknown; reason?: unknown; message?: unknown; fields?: unknown } | null
  if (e === null || typeof e !== "object" || typeof e._tag !== "string" || typeof e.message !== "string") return fallback
  const fields = Array.isArray(e.fields) && e.fields.length > 0 ? ` [${e.fields.join(", ")}]` : ""
  return `${e._tag}${typeof e.reason === "string" ? ` ${e.reason}` : ""}${fields}: ${e.message}`
}

/** A 403 for the relay's own role is its token's problem (hold); one for an instrument grant is the filing's (refuse). */
const verdictOf = (error: unknown): RetryPolicy.Judgement => {
  const judgement = RetryPolicy.judge(error)
  if (judgement.verdict === "Unauthorized" && error instanceof ApiErrors.Forbidden && error.reason !== "Role") {
    return { ...judgement, verdict: "Permanent" }
  }
  return judgement
}

/** Forwards the backlog for as long as the scope lives. */
export const forwardLoop = (options: Options) =>
  Effect.gen(function* () {
    let pool = makePool(options)
    yield* Effect.addFinalizer(() => destroyPool(pool))
    let client = yield* clientOn(options, pool)
    const backoff = yield* Schedule.driver(RetryPolicy.schedule({ cap: options.maxBackoff }))
    while (true) {
      const next = yield* RelayStore.nextPending
      if (next === undefined) {
        yield* Effect.sleep("200 millis")
        continue
      }
      const result = yield* send(client, next).pipe(Effect.timeout(options.requestTimeout), Effect.either)
      if (result._tag === "Right") {
        yield* RelayStore.markForwarded(next.seq)
        yield* backoff.reset
        continue
      }
      const judgement = verdictOf(result.left)
      if (judgement.verdict === "Permanent") {
        const reason = refusalText(result.left, judgement.reason)
        yield* RelayStore.markRefused(next.seq, judgement.status, reason)
        yield* Effect.logWarning(
          `the main refused filing ${next.id} (${next.kind} of observation ${next.observationId}): ${reason}; kept as refused`
        )
        continue
      }
      yield* RelayStore.markAttemptFailed(next.seq, judgement.reason)
      yield* Effect.logInfo(
        `forwarding filing ${next.id} failed (${judgement.reason}); trying again after a backoff, on a fresh connection`
      )
      // Never wait on a socket that may have died with the link: the next try connects anew.
      yield* destroyPool(pool)
      pool = makePool(options)
      client = yield* clientOn(options, pool)
      yield* backoff.next(undefined).pipe(Effect.ignore)
    }
  }).pipe(Effect.scoped, Effect.catchTag("SqlError", (e) => Effect.die(e)))

/** A failure with its underlying cause (a transport error's socket error), for logs and status. */
export const describe = (e: unknown): string => {
  const cause = (e as { cause?: unknown } | null)?.cause
  const inner = (cause as { cause?: unknown } | undefined)?.cause
  return [String(e), cause === undefined ? undefined : String(cause), inner === undefined ? undefined : String(inner)].filter((x) =>
    x !== undefined
  ).join(": ")
}

/** The main did not hand out its reference data (a refused token, a server error). */
export class SyncError extends Data.TaggedError("SyncError")<{ readonly message: string }> {}

/** The outcome of the last sync, for status and metrics. */
export interface SyncState {
  readonly pulledAt: Date | undefined
  readonly lastError: string | undefined
}

/** Pulls the reference data once, on a fresh connection: saved, then made current. */
export const pullOnce = (options: Options, current: Ref.Ref<Reference> | undefined) =>
  withFreshConnection(options, (http) =>
    Effect.gen(function* () {
      const response = yield* http.execute(
        HttpClientRequest.get(`${options.mainUrl}${referencePath}`).pipe(HttpClientRequest.bearerToken(options.token))
      )
      if (response.status !== 200) {
        const text = yield* response.text
        return yield* new SyncError({ message: `the main answered ${response.status} to ${referencePath}: ${text.slice(0, 500)}` })
      }
      const reference = yield* HttpClientResponse.schemaBodyJson(Reference)(response)
      yield* RelayStore.saveReference(reference)
      if (current !== undefined) yield* Ref.set(current, reference)
      return reference
    }).pipe(Effect.scoped, Effect.timeout(options.requestTimeout)))

/** Pulls the reference data every sync interval; a failed pull keeps the last data and is reported. */
export const syncLoop = (options: Options, current: Ref.Ref<Reference>, state: Ref.Ref<SyncState>) =>
  pullOnce(options, current).pipe(
    Effect.matchEffect({
      onSuccess: () => Ref.set(state, { pulledAt: new Date(), lastError: undefined }),
      onFailure: (e) =>
        Effect.zipRight(
          Ref.update(state, (s) => ({ ...s, lastError: describe(e) })),
          Effect.logWarning(`pulling reference data from the main failed (keeping the last copy): ${describe(e)}`)
        )
    }),
    Effect.repeat(Schedule.spaced(options.syncInterval)),
    Effect.asVoid
  )
