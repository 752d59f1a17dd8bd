/**
 * When a failed call is worth trying again, and how long to wait: exponential backoff with
 * jitter and a cap. One classification serves direct calls (retried a few times, only when the
 * request is idempotent) and the outbox (which waits out outages of any length).
 */
import { Backoff } from "@ccat/core"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Schedule from "effect/Schedule"

/** How to back off. */
export interface Options {
  /** The first delay (default 200 ms); each next one is `factor` times longer. */
  readonly base?: Duration.DurationInput | undefined
  /** Growth per attempt (default 2). */
  readonly factor?: number | undefined
  /** No delay is longer than this (default 30 s), so a returning server is noticed soon. */
  readonly cap?: Duration.DurationInput | undefined
  /** Retries after the first attempt; direct calls default to 4, the outbox never gives up. */
  readonly times?: number | undefined
}

/**
 * Delays of `min(base * factor^n, cap)`, each scaled by a random factor in [0.5, 1] so many
 * clients coming back after one outage do not hit the server in lockstep (core's `Backoff`);
 * the output is each delay. Never ends by itself: callers bound it by `times`.
 */
export const schedule = (options: Options = {}): Schedule.Schedule<Duration.Duration> =>
  Backoff.schedule({ base: options.base ?? "200 millis", factor: options.factor ?? 2, cap: options.cap ?? "30 seconds" })

/**
 * What a failure means for the caller. `Transient`: try again later (network, timeout, 408,
 * 429, 5xx, and 499: the server saw the caller hang up, so the request did not complete). `Unauthorized`: the client's token is wrong (401, 403); nothing is wrong with the
 * request, so the outbox holds its queue until the token is fixed rather than discarding it.
 * `Permanent`: this request will never succeed as it is (other 4xx, a 409 conflict).
 */
export type Verdict = "Transient" | "Unauthorized" | "Permanent"

/** A failure judged: the verdict, the HTTP status when there was one, and a readable reason. */
export interface Judgement {
  readonly verdict: Verdict
  readonly status?: number | undefined
  readonly reason: string
}

const byStatus = (status: number): Verdict =>
  status === 408 || status === 429 || status === 499 || (status >= 500 && status !== 501 && status !== 505)
    ? "Transient"
    : status === 401 || status === 403
    ? "Unauthorized"
    : "Permanent"

const describe = (error: unknown): string => {
  if (Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message !== "") {
    return Predicate.hasProperty(error, "_tag") ? `${String(error._tag)}: ${error.message}` : error.message
  }
  try {
    return JSON.stringify(error)
  } catch {
    return String(error)
  }
}

/** The status a typed error of the contract is declared with (`HttpApiSchema.annotations`). */
const declaredStatus = (error: object): number | undefined => {
  const ast = (error.constructor as { ast?: unknown } | undefined)?.ast
  return ast !== undefined && Predicate.hasProperty(ast, "_tag")
    ? HttpApiSchema.getStatusErrorAST(ast as Parameters<typeof HttpApiSchema.getStatusErrorAST>[0])
    : undefined
}

/** Judges any failure of a call made through the derived client. */
export const judge = (error: unknown): Judgement => {
  const reason = describe(error)
  if (Cause.isTimeoutException(error)) return { verdict: "Transient", reason }
  if (HttpClientError.isHttpClientError(error)) {
    if (error._tag === "RequestError") {
      return { verdict: error.reason === "Transport" ? "Transient" : "Permanent", reason }
    }
    const status = error.response.status
    // A 2xx that did not decode means client and server disagree on the contract.
    return { verdict: status >= 200 && status < 300 ? "Permanent" : byStatus(status), status, reason }
  }
  if (Predicate.isObject(error) && Predicate.hasProperty(error, "_tag")) {
    const status = declaredStatus(error)
    if (status !== undefined) return { verdict: byStatus(status), status, reason }
  }
  return { verdict: "Permanent", reason }
}

/** Whether a failure is worth retrying right away. */
export const isTransient = (error: unknown): boolean => judge(error).verdict === "Transient"

/** Retries an effect on transient failures; only for calls that are safe to repeat. */
export const retry = (options: Options = {}) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(self, { schedule: schedule(options), times: options.times ?? 4, while: isTransient })

/**
 * Whether a request may be sent twice: the idempotent methods, and any request carrying an
 * `Idempotency-Key` (filings are idempotent by the instrument's UUIDs and say so with one).
 */
export const isIdempotent = (request: HttpClientRequest.HttpClientRequest): boolean =>
  ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].includes(request.method) || request.headers["idempotency-key"] !== undefined

class TransientResponse extends Data.TaggedError("TransientResponse")<{ readonly response: HttpClientResponse.HttpClientResponse }> {}

/**
 * An `HttpClient` that retries transient failures of idempotent requests. It works below the
 * contract, so a last transient response is handed back and decoded as the contract says.
 */
export const withRetries = (options: Options = {}) => <E, R>(client: HttpClient.HttpClient.With<E, R>): HttpClient.HttpClient.With<E, R> =>
  HttpClient.transform(client, (effect, request) =>
    !isIdempotent(request) ? effect : effect.pipe(
      Effect.filterOrFail((response) => byStatus(response.status) !== "Transient", (response) => new TransientResponse({ response })),
      Effect.retry({
        schedule: schedule(options),
        times: options.times ?? 4,
        while: (e) => e instanceof TransientResponse || isTransient(e)
      }),
      Effect.catchIf((e): e is TransientResponse => e instanceof TransientResponse, (e) => Effect.succeed(e.response))
    ))
