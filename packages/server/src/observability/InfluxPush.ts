/**
 * Pushes the metrics to InfluxDB (or anything that accepts line protocol: Telegraf's
 * `influxdb_listener`, VictoriaMetrics) every few seconds, for sites that run Influx rather than
 * a Prometheus scraper. It runs in a fiber of its own with a timeout per push and exponential
 * backoff while the endpoint fails, so a slow or dead Influx never blocks the server or the
 * workers; a failed push is logged and retried, never fatal.
 */
import { Backoff } from "@ccat/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as os from "node:os"
import * as Exposition from "./Exposition.js"
import * as InfluxWrite from "./internal/InfluxWrite.js"
import * as Metrics from "./Metrics.js"

/** Where and how often to push. */
export interface Options {
  /**
   * The write URL: `http://influx:8086/write?db=ccat` (1.x; `rp=` picks a retention policy),
   * `http://influx:8086/api/v2/write?org=ccat&bucket=ops` (2.x, 3.x, and 1.8+'s compatibility
   * endpoint). A `precision` of `ns` (the default), `ms` or `s` is honoured.
   */
  readonly url: string
  /** Sent as `Authorization: Token <token>` (InfluxDB 2.x and 3.x; `user:password` for 1.8+). */
  readonly token?: Redacted.Redacted<string> | undefined
  /** With `password`, sent as basic authentication (InfluxDB 1.x, where `auth-enabled` is on). */
  readonly username?: string | undefined
  /** The password of `username`. */
  readonly password?: Redacted.Redacted<string> | undefined
  /** Time between pushes. Default 15 s. */
  readonly interval?: Duration.DurationInput
  /** A push that takes longer is abandoned. Default 10 s. */
  readonly timeout?: Duration.DurationInput
  /** The longest wait between attempts while the endpoint fails. Default 5 min. */
  readonly maxBackoff?: Duration.DurationInput
  /** Tags added to every line; default `host` = this machine, so processes' own metrics stay apart. */
  readonly tags?: Readonly<Record<string, string>>
}

const hints: Record<string, string> = {
  Unauthorized:
    "check CCAT_INFLUX_TOKEN (2.x, 3.x; user:password for 1.8+) or CCAT_INFLUX_USERNAME and CCAT_INFLUX_PASSWORD (1.x, which before 1.8 takes no token), and that the user may write there",
  NotFound: "create the database (1.x: CREATE DATABASE) or bucket first, see docs/metrics.md"
}

/** Why one push failed; logged, then the pusher backs off and tries again. */
export class InfluxPushError extends Data.TaggedError("InfluxPushError")<{
  /** Unauthorized (401/403), NotFound (no such database or bucket), Rejected (the points were refused), Status (any other answer), Transport, Timeout. */
  readonly reason: "Unauthorized" | "NotFound" | "Rejected" | "Status" | "Transport" | "Timeout"
  readonly url: string
  readonly status?: number
  readonly detail?: string
}> {
  override get message(): string {
    const answer = `${this.status}${this.detail ? `: ${this.detail}` : ""}`
    switch (this.reason) {
      case "Timeout":
        return `metrics push to ${this.url} did not answer in time`
      case "Transport":
        return `metrics push to ${this.url} could not be reached: ${this.detail}`
      case "Unauthorized":
        return `metrics push to ${this.url} was refused (${answer}); ${hints.Unauthorized}`
      case "NotFound":
        return `metrics push to ${this.url} found no such database or bucket (${answer}); ${hints.NotFound}`
      case "Rejected":
        return `metrics push to ${this.url}: the points were refused (${answer})`
      case "Status":
        return `metrics push to ${this.url} answered ${answer}`
    }
  }
}

/** Why the push's settings cannot work; reported at startup, before any push. */
export class InfluxConfigError extends Data.TaggedError("InfluxConfigError")<{ readonly detail: string }> {
  override get message(): string {
    return `metrics push: ${this.detail}`
  }
}

/** What one push delivered: its lines and bytes, and the server's words when it kept only part of them. */
export interface Delivery {
  readonly lines: number
  readonly bytes: number
  readonly partial?: string
}

/** The wait after `failures` consecutive failures: the interval doubled per failure, capped, jittered to 50–100 %. */
export const backoff = (interval: Duration.Duration, max: Duration.Duration, failures: number): Duration.Duration =>
  Backoff.delayFor({ base: interval, cap: max }, failures, Math.random())

const targetOf = (options: Options) =>
  Either.mapLeft(InfluxWrite.target(options.url, options), (detail) => new InfluxConfigError({ detail }))

// The client's own message names the full URL, query and its credentials included: say what
// failed from the cause (ECONNREFUSED, a DNS failure) and never repeat the query.
const transportDetail = (
  e: { readonly reason: string; readonly cause?: unknown; readonly message: string },
  target: InfluxWrite.Target
) => {
  const cause = e.cause as { message?: string; code?: string; cause?: { code?: string; message?: string } } | undefined
  const inner = cause?.cause?.code ?? cause?.code ?? cause?.cause?.message ?? cause?.message
  const text = inner === undefined ? `${e.reason} error` : `${e.reason} error: ${inner}`
  return text.replaceAll(target.url, target.shown)
}

/** A push function on one collector and client: collects, renders, sends, reads the answer. */
const pusher = (options: Options, target: InfluxWrite.Target) =>
  Effect.gen(function* () {
    const provided = yield* Effect.serviceOption(Metrics.MetricsCollector)
    const collector = Option.isSome(provided) ? provided.value : yield* Metrics.make()
    const client = yield* HttpClient.HttpClient
    const timeout = options.timeout ?? Duration.seconds(10)
    const tags = options.tags ?? { host: os.hostname() }
    const url = target.shown
    return Effect.fn("InfluxPush.push")(function* () {
      const families = yield* collector.collect
      const body = Exposition.lineProtocol(families, InfluxWrite.timestamp(target.precision, Date.now()), tags)
      const delivery: Delivery = { lines: body === "" ? 0 : body.split("\n").length - 1, bytes: Buffer.byteLength(body) }
      if (body === "") return delivery
      let request = HttpClientRequest.post(target.url).pipe(HttpClientRequest.bodyText(body, "text/plain; charset=utf-8"))
      if (target.authorization !== undefined) {
        request = HttpClientRequest.setHeader(request, "authorization", Redacted.value(target.authorization))
      }
      const answer = yield* client.execute(request).pipe(
        Effect.flatMap((response) =>
          Effect.map(Effect.orElseSucceed(response.text, () => ""), (text) => ({ status: response.status, text }))
        ),
        Effect.scoped,
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new InfluxPushError({ reason: "Timeout", url }) }),
        Effect.catchTags({
          RequestError: (e) => Effect.fail(new InfluxPushError({ reason: "Transport", url, detail: transportDetail(e, target) })),
          ResponseError: (e) => Effect.fail(new InfluxPushError({ reason: "Transport", url, detail: transportDetail(e, target) }))
        })
      )
      if (answer.status >= 200 && answer.status < 300) return delivery
      const refusal = InfluxWrite.refusal(answer.status, answer.text)
      if (refusal._tag === "Partial") return { ...delivery, partial: refusal.detail }
      return yield* new InfluxPushError({ reason: refusal._tag, url, status: answer.status, detail: refusal.detail })
    })
  })

/**
 * One push now, with the same settings, rendering and checks as the running pusher; fails with
 * the reason when the endpoint does not take it. For tests and for checking a configuration.
 */
export const pushOnce = (options: Options) =>
  Effect.gen(function* () {
    const target = yield* targetOf(options)
    const push = yield* pusher(options, target)
    return yield* push()
  })

// The kind of an outcome, so a change (another status, another refusal) is logged at once.
const kindOf = (text: string) => text.replace(/[0-9]+/g, "N")

/** Runs the pusher until the scope closes. */
export const run = (options: Options) =>
  Effect.gen(function* () {
    const target = yield* targetOf(options)
    const push = yield* pusher(options, target)
    const interval = Duration.decode(options.interval ?? Duration.seconds(15))
    const maxBackoff = Duration.decode(options.maxBackoff ?? Duration.minutes(5))

    yield* Effect.logInfo(
      `pushing metrics as line protocol (${target.api} write API) to ${target.shown} every ${Duration.format(interval)}`
    )
    let failures = 0
    let partials = 0
    let lastKind = ""
    while (true) {
      const result = yield* Effect.either(push())
      if (result._tag === "Left") {
        failures++
        const kind = kindOf(`${result.left.reason} ${result.left.status ?? ""} ${result.left.detail ?? ""}`)
        // Log the first failure, every tenth, and any of another kind, so an outage does not flood the log.
        if (failures === 1 || failures % 10 === 0 || kind !== lastKind) {
          yield* Effect.logWarning(`${result.left.message} (failure ${failures}; backing off)`)
        }
        lastKind = kind
        yield* Effect.sleep(backoff(interval, maxBackoff, failures))
        continue
      }
      if (failures > 0) yield* Effect.logInfo(`metrics push to ${target.shown} works again after ${failures} failures`)
      failures = 0
      const partial = result.right.partial
      if (partial === undefined) {
        partials = 0
        lastKind = ""
      } else {
        partials++
        const kind = kindOf(partial)
        if (partials === 1 || partials % 10 === 0 || kind !== lastKind) {
          yield* Effect.logWarning(
            `metrics push to ${target.shown} kept only part of the points: ${partial} (${partials} such pushes in a row)`
          )
        }
        lastKind = kind
      }
      yield* Effect.sleep(interval)
    }
  }).pipe(Effect.annotateLogs({ component: "InfluxPush" }))

/** The pusher as a scoped layer: starts a background fiber, stops it when the layer is released; settings that cannot work are a defect at startup. */
export const layer = (options: Options): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.scopedDiscard(
    Effect.zipRight(
      Effect.orDie(targetOf(options)),
      run(options).pipe(Effect.provide(FetchHttpClient.layer), Effect.orDie, Effect.forkScoped)
    )
  )

/**
 * The environment's settings: `CCAT_INFLUX_URL` (unset: no pushing), `CCAT_INFLUX_TOKEN`, or
 * `CCAT_INFLUX_USERNAME` with `CCAT_INFLUX_PASSWORD`, and `CCAT_INFLUX_INTERVAL_SECONDS`. A URL or
 * credentials that cannot work are refused here, so the server does not start with them.
 */
export const config = Config.all({
  url: Config.option(Config.nonEmptyString("CCAT_INFLUX_URL")),
  token: Config.option(Config.redacted("CCAT_INFLUX_TOKEN")),
  username: Config.option(Config.nonEmptyString("CCAT_INFLUX_USERNAME")),
  password: Config.option(Config.redacted("CCAT_INFLUX_PASSWORD")),
  interval: Config.number("CCAT_INFLUX_INTERVAL_SECONDS").pipe(
    Config.validate({ message: "must be a number of seconds of at least 1", validation: (n) => n >= 1 }),
    Config.withDefault(15)
  )
}).pipe(
  Config.mapOrFail((c) => {
    if (Option.isNone(c.url)) return Either.right(Option.none<Options>())
    const options: Options = {
      url: c.url.value,
      token: Option.getOrUndefined(c.token),
      username: Option.getOrUndefined(c.username),
      password: Option.getOrUndefined(c.password),
      interval: Duration.seconds(c.interval)
    }
    return Either.match(InfluxWrite.target(options.url, options), {
      onLeft: (detail) => Either.left(ConfigError.InvalidData(["CCAT_INFLUX_URL"], detail)),
      onRight: () => Either.right(Option.some(options))
    })
  })
)

/** The pusher configured from the environment; nothing at all when `CCAT_INFLUX_URL` is unset. */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError, SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.map(config, (options) => (Option.isNone(options) ? Layer.empty : layer(options.value)))
)
