/**
 * How the server writes its logs. In production they go to a log collector (journald, Loki,
 * Elasticsearch) that wants one JSON object per line, with the ids a line concerns as fields:
 * the JSON logger writes every log annotation (`Effect.annotateLogs({ packageId })`) and the
 * open spans (`Effect.fn("Transfer.run")`) of the line. On a terminal people read them, so the
 * default there is the pretty logger. `CCAT_LOG_FORMAT` (json, logfmt, pretty) overrides the
 * choice and `CCAT_LOG_LEVEL` (debug, info, warn, error) sets the minimum level.
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashSet from "effect/HashSet"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/** The log formats an operator can choose. */
export type LogFormat = "json" | "logfmt" | "pretty"

/** The default format: pretty on a terminal, JSON lines otherwise (a service manager, a container). */
export const defaultFormat = (): LogFormat => (process.stdout.isTTY ? "pretty" : "json")

const loggerOf = (format: LogFormat): Logger.Logger<unknown, void> =>
  format === "json"
    ? Logger.withConsoleLog(Logger.jsonLogger)
    : format === "logfmt"
    ? Logger.withConsoleLog(Logger.logfmtLogger)
    : Logger.prettyLoggerDefault

/**
 * The logger of a format as the only one writing lines (the platform's `runMain` adds its pretty
 * logger, which would print every line twice); the tracer's logger, which records log lines as
 * span events, is kept.
 */
export const layer = (format: LogFormat, level: LogLevel.LogLevel = LogLevel.Info): Layer.Layer<never> =>
  Layer.merge(
    Layer.scopedDiscard(
      Effect.locallyScopedWith(
        FiberRef.currentLoggers,
        (loggers) => HashSet.add(HashSet.filter(loggers, (l) => l === Logger.tracerLogger), loggerOf(format))
      )
    ),
    Logger.minimumLogLevel(level)
  )

/** The environment's settings: `CCAT_LOG_FORMAT` and `CCAT_LOG_LEVEL`. */
export const config = Config.all({
  format: Config.literal("json", "logfmt", "pretty")("CCAT_LOG_FORMAT").pipe(Config.withDefault(defaultFormat())),
  level: Config.logLevel("CCAT_LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info))
})

/** The logger configured from the environment (a bad value is a startup error that names it). */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, (c) => layer(c.format, c.level))
)
