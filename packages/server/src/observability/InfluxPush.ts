/**
 * Pushes the metrics to InfluxDB (or anything that accepts line protocol: Telegraf's
 * `influxdb_listener`, VictoriaMetrics) every few seconds, for sites that run Influx rather than
 * a Prometheus scraper. It runs in a fiber of its own with a timeout per push and exponential
 * backoff while the endpoint fails, so a slow or dead Influx never blocks the server or the
 * workers; a failed push is logged and retried, never fatal.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as os from "node:os"
import * as Exposition from "./Exposition.js"
import * as Metrics from "./Metrics.js"

/** Where and how often to push. */
export interface Options {
  /** The write URL, e.g. `http://influx:8086/api/v2/write?org=ccat&bucket=ops` (v1: `/write?db=ops`). */
  readonly url: string
  /** Sent as `Authorization: Token <token>` (InfluxDB 2.x and 3.x). */
  readonly token?: Redacted.Redacted<string> | undefined
  /** Time between pushes. Default 15 s. */
  readonly interval?: Duration.DurationInput
  /** A push that takes longer is abandoned. Default 10 s. */
  readonly timeout?: Duration.DurationInput
  /** The longest wait between attempts while the endpoint fails. Default 5 min. */
  readonly maxBackoff?: Duration.DurationInput
  /** Tags added to every line; default `host` = this machine, so processes' own metrics stay apart. */
  readonly tags?: Readonly<Record<string, string>>
}

/** Why one push failed; logged, then the pusher backs off and tries again. */
export class InfluxPushError extends Data.TaggedError("InfluxPushError")<{
  readonly reason: "Status" | "Transport" | "Timeout"
  readonly url: string
  readonly status?: number
  readonly detail?: string
}> {
  override get message(): string {
    const what = this.reason === "Status" ? `answered ${this.status}${this.detail ? `: ${this.detail}` : ""}` : this.reason === "Timeout" ? "did not answer in time" : `could not be reached: ${this.detail}`
    return `metrics push to ${this.url} ${what}`
  }
}

/** The wait after `failures` consecutive failures: the interval doubled per failure, capped, jittered to 50–100 %. */
export const backoff = (interval: Duration.Duration, max: Duration.Duration, failures: number): Duration.Duration => {
  const ms = Math.min(Duration.toMillis(max), Duration.toMillis(interval) * 2 ** Math.max(0, failures - 1))
  return Duration.millis(Math.round(ms * (0.5 + Math.random() / 2)))
}

// The URL without its query: the query may carry credentials (v1 `u=`/`p=`), so it is never logged.
const safeUrl = (url: string) => url.split("?")[0] ?? url

/** Runs the pusher until the scope closes. */
export const run = (options: Options) =>
  Effect.gen(function* () {
    const provided = yield* Effect.serviceOption(Metrics.MetricsCollector)
    const collector = Option.isSome(provided) ? provided.value : yield* Metrics.make()
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
    const interval = Duration.decode(options.interval ?? Duration.seconds(15))
    const timeout = options.timeout ?? Duration.seconds(10)
    const maxBackoff = Duration.decode(options.maxBackoff ?? Duration.minutes(5))
    const tags = options.tags ?? { host: os.hostname() }
    const shownUrl = safeUrl(options.url)

    const push = Effect.fn("InfluxPush.push")(function* () {
      const families = yield* collector.collect
      const body = Exposition.lineProtocol(families, BigInt(Date.now()) * 1_000_000n, tags)
      if (body === "") return 0
      let request = HttpClientRequest.post(options.url).pipe(HttpClientRequest.bodyText(body, "text/plain; charset=utf-8"))
      if (options.token !== undefined) request = HttpClientRequest.setHeader(request, "authorization", `Token ${Redacted.value(options.token)}`)
      yield* client.execute(request).pipe(
        Effect.flatMap((response) => response.text),
        Effect.scoped,
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new InfluxPushError({ reason: "Timeout", url: shownUrl }) }),
        Effect.catchTags({
          ResponseError: (e) =>
            Effect.flatMap(Effect.orElseSucceed(e.response.text, () => ""), (text) =>
              Effect.fail(new InfluxPushError({ reason: "Status", url: shownUrl, status: e.response.status, detail: text.slice(0, 200) }))),
          RequestError: (e) => Effect.fail(new InfluxPushError({ reason: "Transport", url: shownUrl, detail: e.message }))
        })
      )
      return body.length
    })

    yield* Effect.logInfo(`pushing metrics as line protocol to ${shownUrl} every ${Duration.format(interval)}`)
    let failures = 0
    while (true) {
      const result = yield* Effect.either(push())
      if (result._tag === "Left") {
        failures++
        // Log the first failure and then every tenth, so an outage does not flood the log.
        if (failures === 1 || failures % 10 === 0) yield* Effect.logWarning(`${result.left.message} (failure ${failures}; backing off)`)
        yield* Effect.sleep(backoff(interval, maxBackoff, failures))
      } else {
        if (failures > 0) yield* Effect.logInfo(`metrics push to ${shownUrl} works again after ${failures} failures`)
        failures = 0
        yield* Effect.sleep(interval)
      }
    }
  }).pipe(Effect.annotateLogs({ component: "InfluxPush" }))

/** The pusher as a scoped layer: starts a background fiber, stops it when the layer is released. */
export const layer = (options: Options): Layer.Layer<never, never, SqlClient.SqlClient> =>
  Layer.scopedDiscard(run(options).pipe(Effect.provide(FetchHttpClient.layer), Effect.forkScoped))

/** The environment's settings: `CCAT_INFLUX_URL` (unset: no pushing), `CCAT_INFLUX_TOKEN`, `CCAT_INFLUX_INTERVAL_SECONDS`. */
export const config = Config.all({
  url: Config.option(Config.nonEmptyString("CCAT_INFLUX_URL")),
  token: Config.option(Config.redacted("CCAT_INFLUX_TOKEN")),
  interval: Config.number("CCAT_INFLUX_INTERVAL_SECONDS").pipe(Config.withDefault(15))
})

/** The pusher configured from the environment; nothing at all when `CCAT_INFLUX_URL` is unset. */
export const layerConfig: Layer.Layer<never, never, SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.map(Effect.orDie(config), (c) =>
    Option.isNone(c.url)
      ? Layer.empty
      : layer({ url: c.url.value, token: Option.getOrUndefined(c.token), interval: Duration.seconds(c.interval) }))
)
