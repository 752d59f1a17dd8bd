/**
 * What every operator command that talks to a running server shares: where the server is
 * (`--url`, `$CCAT_URL`), who is calling (`--token`, `$CCAT_TOKEN`), `--json`, the client derived
 * from the contract, and one mapping of failures to messages and exit codes, so scripts can
 * tell "the server refused this" from "the request was wrong" from "something broke":
 *
 * | exit | meaning |
 * |---|---|
 * | 0 | done |
 * | 1 | failure: the server is unreachable or answered 5xx, a staging request failed, a wait timed out |
 * | 2 | usage: bad options or arguments, or the server found the request malformed (400, 422) |
 * | 3 | refused: no or a bad token (401), not allowed (403), no such item (404), a state that does not allow it (409) |
 */
import { CcatClient } from "@ccat/client"
import * as Options from "@effect/cli/Options"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/** Where a server listens when nothing says otherwise (ServerConfig's default port). */
export const defaultUrl = "http://127.0.0.1:8080"

/** An exit code of the operator commands (see the module's table). */
export type ExitCode = 1 | 2 | 3

/**
 * A command that ends without doing what was asked, with the exit code and message to show.
 * `json` carries the command's `--json` so the error is printed the way its output would be.
 */
export class CliError extends Data.TaggedError("CliError")<{
  readonly exitCode: ExitCode
  readonly message: string
  /** The API error's tag (NotFound, Conflict, ...) or a local one (Usage, Unreachable, ...). */
  readonly kind: string
  readonly json: boolean
}> {}

/** A usage error found before anything is sent. */
export const usage = (json: boolean, message: string) => new CliError({ exitCode: 2, kind: "Usage", message, json })

/** Prints a CliError on stderr (as a JSON line with `--json`) and sets the exit code. */
export const report = (e: CliError) =>
  Effect.zipRight(
    e.json
      ? Console.error(JSON.stringify({ error: { kind: e.kind, message: e.message, exitCode: e.exitCode } }))
      : Console.error(`ccat: ${e.message}`),
    Effect.sync(() => {
      process.exitCode = e.exitCode
    })
  )

/** The options every remote command takes. */
export const options = {
  url: Options.text("url").pipe(
    Options.withFallbackConfig(Config.string("CCAT_URL")),
    Options.withDefault(defaultUrl),
    Options.withDescription(`the server's base URL (default: $CCAT_URL, else ${defaultUrl})`)
  ),
  token: Options.redacted("token").pipe(
    Options.withFallbackConfig(Config.redacted("CCAT_TOKEN")),
    Options.optional,
    Options.withDescription("an API token, as `ccat token create` printed it (default: $CCAT_TOKEN)")
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print JSON for scripts (one document on stdout; errors as JSON on stderr)"))
}

/** The parsed remote options. */
export interface Remote {
  readonly url: string
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly json: boolean
}

const refused = new Set(["Unauthorized", "Forbidden", "NotFound", "Conflict"])
const malformed = new Set(["BadRequest", "Unprocessable", "HttpApiDecodeError", "PayloadTooLarge"])

/** Turns whatever a call failed with into a CliError with its exit code and a readable message. */
const toCliError = (r: Remote) => (error: unknown): CliError => {
  if (error instanceof CliError) return error
  const tag = Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : "Error"
  const message = Predicate.hasProperty(error, "message") && typeof error.message === "string" ? error.message : String(error)
  if (tag === "RequestError") {
    return new CliError({ exitCode: 1, kind: "Unreachable", json: r.json, message: `cannot reach the server at ${r.url}: ${message}` })
  }
  if (tag === "ResponseError") {
    const status = Predicate.hasProperty(error, "response") && Predicate.hasProperty(error.response, "status")
      ? error.response.status
      : undefined
    return new CliError({
      exitCode: 1,
      kind: "ServerError",
      json: r.json,
      message: `the server at ${r.url} answered ${status ?? "unexpectedly"}: ${message}`
    })
  }
  if (tag === "Unauthorized") {
    const hint = Option.isNone(r.token) ? " (pass --token or set CCAT_TOKEN)" : ""
    return new CliError({ exitCode: 3, kind: tag, json: r.json, message: `${message}${hint}` })
  }
  if (refused.has(tag)) return new CliError({ exitCode: 3, kind: tag, json: r.json, message })
  if (malformed.has(tag)) return new CliError({ exitCode: 2, kind: tag, json: r.json, message })
  return new CliError({ exitCode: 1, kind: tag, json: r.json, message })
}

/**
 * How long one call (with its retries) may take before the command gives up on the server:
 * `$CCAT_REQUEST_TIMEOUT` seconds, 60 by default.
 */
export const requestTimeout = Config.integer("CCAT_REQUEST_TIMEOUT").pipe(
  Config.validate({ message: "must be a whole number of seconds, at least 1", validation: (n) => n >= 1 }),
  Config.withDefault(60),
  Config.map(Duration.seconds)
)

/**
 * Runs calls of the derived client against the server. Safe calls are retried twice on
 * transient failures (a restarting server), no longer: a person is waiting at the prompt. A
 * server that accepts the connection but never answers fails the call after `requestTimeout`
 * (exit 1) instead of hanging the command.
 */
export const withClient = <A, E>(r: Remote, f: (client: CcatClient.Client) => Effect.Effect<A, E>): Effect.Effect<A, CliError> =>
  Effect.gen(function* () {
    const timeout = yield* requestTimeout.pipe(
      Effect.mapError((e) => usage(r.json, `CCAT_REQUEST_TIMEOUT ${String(e).replace(/^.*?: /, "")}`))
    )
    return yield* CcatClient.make({
      baseUrl: r.url.replace(/\/+$/, ""),
      token: Option.getOrUndefined(r.token),
      retry: { times: 2, base: "200 millis" },
      transformClient: (client) =>
        HttpClient.transform(client, (response, request) =>
          Effect.timeoutFail(response, {
            duration: timeout,
            onTimeout: () =>
              new HttpClientError.RequestError({
                request,
                reason: "Transport",
                description: `no answer within ${Duration.format(timeout)}`
              })
          }))
    }).pipe(
      Effect.flatMap(f),
      Effect.provide(FetchHttpClient.layer),
      Effect.mapError(toCliError(r))
    )
  })

/** Prints a value as JSON in the contract's own encoding (ISO dates, plain ids). */
export const printJson = <A, I>(schema: Schema.Schema<A, I>, value: A) =>
  Effect.flatMap(Effect.orDie(Schema.encode(schema)(value)), (encoded) => Console.log(JSON.stringify(encoded, null, 2)))

const uuid = Schema.UUID
const isUuid = Schema.is(uuid)

/** Checks an id argument is a UUID before anything is sent (exit 2 otherwise). */
export const requireUuid = (json: boolean, what: string, value: string): Effect.Effect<string, CliError> =>
  isUuid(value) ? Effect.succeed(value) : Effect.fail(usage(json, `${what} must be a UUID, not ${JSON.stringify(value)}`))

/** The most items a listing prints unless `--limit` says otherwise. */
export const defaultLimit = 100

/** `--limit`: how many items a list prints in all, following the server's cursor across pages. */
export const limitOption = Options.integer("limit").pipe(
  Options.withDefault(defaultLimit),
  Options.withDescription(`print at most this many items, fetching as many pages as needed (default ${defaultLimit})`)
)

/**
 * Follows a list endpoint's cursor until `limit` items or the last page. `more` says whether
 * the server had more than were printed.
 */
export const collect = <T, E>(
  limit: number,
  fetchPage: (
    params: { readonly limit: number; readonly cursor?: string }
  ) => Effect.Effect<{ readonly items: ReadonlyArray<T>; readonly nextCursor: string | null }, E>
): Effect.Effect<{ readonly items: ReadonlyArray<T>; readonly more: boolean }, E> =>
  Effect.gen(function* () {
    const items: Array<T> = []
    let cursor: string | undefined
    while (true) {
      const want = Math.min(1000, Math.max(1, limit - items.length))
      const page = yield* fetchPage(cursor === undefined ? { limit: want } : { limit: want, cursor })
      items.push(...page.items)
      cursor = page.nextCursor ?? undefined
      if (cursor === undefined) return { items: items.slice(0, limit), more: items.length > limit }
      if (items.length >= limit) return { items: items.slice(0, limit), more: true }
    }
  })

/** Checks `--limit` is positive (exit 2 otherwise). */
export const requireLimit = (json: boolean, limit: number): Effect.Effect<number, CliError> =>
  limit >= 1 ? Effect.succeed(limit) : Effect.fail(usage(json, `--limit must be at least 1, not ${limit}`))
