/**
 * What `ccat route bench ROUTE` does (RouteBench.ts defines the command): measures a configured
 * route with probe transfers through its real adapter (`RouteProbe`), prints what each setting moved, the setting it recommends (the cheapest
 * within 5% of the best) and the bundle size that setting moves in the acceptable transfer time;
 * `--write` records them in the route's configuration (`RouteConfigWrite`). It runs where the
 * route's transfers start (the sending site), from the configuration file the server runs with,
 * and needs no server or database.
 */
import { Topology } from "@ccat/core"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { targetBytesFor } from "../lifecycle/BundlePlanner.js"
import * as RouteProbe from "../lifecycle/RouteProbe.js"
import * as RouteTarget from "../lifecycle/RouteTarget.js"
import { load } from "../ServerConfig.js"
import * as Output from "./Output.js"
import { type BenchOptions, defaultTransferTime } from "./RouteBench.js"
import { type RouteChanges, writeRoute } from "./RouteConfigWrite.js"

/** A setting is recommended over a better one when it is cheaper and this close to the best (a share). */
export const tolerance = 0.05

const usage = (detail: string) => Effect.fail(new RouteTarget.RouteBenchError({ reason: "BadInput", detail }))

const durationOf = (text: string, option: string) =>
  Either.match(Schema.decodeUnknownEither(Topology.DurationText)(text), {
    onLeft: () => usage(`${option}: "${text}" is not a duration; write e.g. "30 minutes", "2 hours"`),
    onRight: (ms) => (ms > 0 ? Effect.succeed(ms) : usage(`${option}: must be longer than zero`))
  })

/** A figure written into the configuration: MB to three significant digits (bytes below 1 MB). */
export const bytesText = (n: number): string => {
  if (n < 1e6) return String(Math.max(1, Math.round(n)))
  const mb = n / 1e6
  return `${Number(mb.toFixed(mb >= 100 ? 0 : mb >= 10 ? 1 : 2))} MB`
}

/** A window as the configuration writes it. */
const windowText = (w: unknown) => (typeof w === "number" ? (w % 1024 ** 2 === 0 ? `${w / 1024 ** 2} MiB` : String(w)) : w)

/** What `--write` sets for a recommended setting. */
export const changesFor = (
  target: RouteTarget.RouteTarget,
  chosen: RouteProbe.Measured,
  perTransfer: number,
  transferTime: string | undefined
): RouteChanges => {
  const s = chosen.setting
  const options: Record<string, unknown> = {}
  if (target.config.adapter === "bbcp") {
    options.streams = s.options.streams
    // only a window the probes changed is written (undefined: bbcp's default, the key removed)
    if ("window" in s.options && s.options.window !== target.config.options.window) options.window = windowText(s.options.window)
  }
  return {
    fields: {
      ...(target.config.adapter === "rsync" ? { maxConcurrentTransfers: s.atOnce } : {}),
      measuredBandwidth: bytesText(perTransfer),
      // the route's own time stays as written unless another was asked for
      ...(transferTime === undefined ? {} : { bundleTransferTime: transferTime })
    },
    options
  }
}

/** Measures the route, prints (or writes) what it recommends. */
export const run = (o: BenchOptions) =>
  Effect.gen(function* () {
    const probeBytes = Topology.parseBytes(o.probeSize)
    if (probeBytes === undefined || probeBytes < 1e6 || probeBytes > 100e9) {
      return yield* usage(`--probe-size: "${o.probeSize}" must be a size from 1 MB to 100 GB`)
    }
    if (o.rounds < 1 || o.rounds > 5) return yield* usage(`--rounds: must be 1 to 5, got ${o.rounds}`)
    const limitMs = yield* durationOf(o.probeTimeout, "--probe-timeout")
    const given = Option.getOrUndefined(o.transferTime)
    const transferMs = given === undefined ? undefined : yield* durationOf(given, "--transfer-time")
    const config = yield* load({ configFile: Option.getOrUndefined(o.config) })
    if (o.write && config.configFile === undefined) {
      return yield* usage("--write needs the configuration file (--config or CCAT_CONFIG): the embedded default has none to write")
    }
    const target = yield* RouteTarget.resolve(config.topology, o.route)
    yield* RouteTarget.checkEnds(target)
    const measured = yield* RouteProbe.probe(target, {
      probeBytes,
      limitSeconds: limitMs / 1000,
      rounds: o.rounds,
      onProgress: (line) => Console.error(line)
    })
    const chosen = RouteProbe.recommend(measured, tolerance)
    const top = RouteProbe.best(measured)
    if (chosen === undefined || top === undefined) {
      const why = measured.map((m) => `${m.setting.label}: ${m.error}`).join("; ")
      return yield* Effect.fail(
        new RouteTarget.RouteBenchError({
          reason: "ProbeFailed",
          detail: `route ${target.name}: every probe failed, nothing is written: ${why}`
        })
      )
    }
    const transferText = given ?? (target.config.bundleTransferTime === undefined ? defaultTransferTime : undefined)
    const timeMs = transferMs ?? target.config.bundleTransferTime ?? 3_600_000
    const perTransfer = chosen.rate / chosen.setting.atOnce
    const changes = changesFor(target, chosen, perTransfer, transferText)
    const policy = config.topology.policy
    const concurrent = typeof changes.fields.maxConcurrentTransfers === "number"
      ? changes.fields.maxConcurrentTransfers
      : target.config.maxConcurrentTransfers
    const bundleBytes = targetBytesFor(policy, {
      options: { measuredBandwidth: perTransfer, bundleTransferTime: timeMs },
      bandwidthLimit: target.config.bandwidthLimit,
      maxConcurrentTransfers: concurrent
    })
    const setupShare = chosen.setupSeconds / (chosen.setupSeconds + bundleBytes / perTransfer)
    if (o.write) yield* writeRoute(config.configFile!, target.index, changes)
    if (o.json) {
      return yield* Console.log(JSON.stringify({
        route: target.name,
        index: target.index,
        adapter: target.config.adapter,
        probeBytes,
        rounds: o.rounds,
        settings: measured.map((m) => ({
          label: m.setting.label,
          options: m.setting.options,
          atOnce: m.setting.atOnce,
          setupSeconds: m.setupSeconds,
          seconds: m.seconds,
          wholeRate: m.wholeRate,
          rate: m.rate,
          tooSmall: m.tooSmall,
          ...(m.error === undefined ? {} : { error: m.error })
        })),
        recommended: chosen.setting.label,
        best: top.setting.label,
        perTransferRate: perTransfer,
        bundleTransferTimeMs: timeMs,
        bundleBytes,
        setupShare,
        changes,
        written: o.write
      }))
    }
    const where = (e: { location: string; root: string }) => `${e.location} ${e.root}`
    yield* Console.log(
      `route ${target.name} (routes[${target.index}], ${target.config.adapter}): ${where(target.source)} -> ${where(target.destination)}`
    )
    yield* Console.log(
      `probes of ${Output.bytes(RouteProbe.smallProbeBytes)} and ${
        Output.bytes(probeBytes)
      } of random data per transfer, the fastest of ${o.rounds} round${o.rounds === 1 ? "" : "s"}; * = recommended\n`
    )
    yield* Console.log(Output.table(
      ["SETTING", "SETUP", "WHOLE", "FLOWING", ""],
      measured.map((m) => [
        `${m === chosen ? "* " : "  "}${m.setting.label}`,
        m.error === undefined ? `${m.setupSeconds.toFixed(2)} s` : "-",
        m.error === undefined ? Output.rate(m.wholeRate) : "-",
        m.error === undefined ? Output.rate(m.rate) : "-",
        m.error !== undefined
          ? `failed: ${Output.cut(m.error, 80)}`
          : m.tooSmall
          ? "probe too small to tell setup from flow: raise --probe-size"
          : ""
      ])
    ))
    yield* Console.log(
      `\nrecommended: ${chosen.setting.label}, ${Output.rate(chosen.rate)}, ${
        ((chosen.rate / top.rate) * 100).toFixed(0)
      }% of the best (${top.setting.label}, ${Output.rate(top.rate)})`
    )
    yield* Console.log(
      `bundle size: ${Output.bytes(bundleBytes)}, what one transfer at ${Output.rate(perTransfer)} moves in ${
        Output.duration(timeMs)
      } (within policy.bundleMinBytes ${Output.bytes(policy.bundleMinBytes)} and policy.bundleMaxBytes ${
        Output.bytes(policy.bundleMaxBytes)
      }${target.config.bandwidthLimit === undefined ? "" : ", at most its share of the route's bandwidthLimit"}); setup is ${
        Output.percent(setupShare)
      } of its time`
    )
    const settings = [
      ...Object.entries(changes.fields).map(([k, v]) => `${k}: ${String(v)}`),
      ...Object.entries(changes.options).map(([k, v]) => (v === undefined ? `options.${k} removed` : `options.${k}: ${String(v)}`))
    ].join(", ")
    yield* Console.log(
      o.write
        ? `written to routes[${target.index}] in ${config.configFile}: ${settings}`
        : `to keep them, run again with --write, or set in routes[${target.index}]: ${settings}`
    )
  }).pipe(
    // the probes' folders are gone by now (their finalizers ran inside)
    Effect.onInterrupt(() => Console.error("ccat: route bench interrupted: nothing is written, and the probes are removed at both ends"))
  )
