/**
 * Measures a route with a short, bounded series of probe transfers through its real adapter
 * (`ccat route bench`): for bbcp, 1, 4, 8 and 16 streams, then a couple of windows at the best
 * stream count; for rsync, 1, 2 and 4 transfers at once; for a local route, one copy. Each
 * setting sends a small probe (what a transfer costs before data flows: ssh, the agents, the
 * first round trips) and a large one (the rate once data flows, past TCP's ramp-up).
 *
 * Probes are files of random data under a folder named `.ccat-tmp-route-bench-<hex>` in the
 * source buffer, sent to the same name in the destination buffer. Storage drivers refuse keys of
 * that form (they are their temporary names), so a probe never meets a filed object; the
 * inventory ignores them and the sweep removes any that a killed bench left. Both folders are
 * removed when the probe ends, however it ends (Ctrl-C included).
 */
import { TemporaryNames, Topology, TransferAdapter, TransferAdapterRegistry } from "@ccat/core"
import { TransferHost } from "@ccat/core/node"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { randomBytes, randomFillSync } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Adapters from "./Adapters.js"
import * as Routes from "./Routes.js"
import { endpointsOf, RouteBenchError, type RouteTarget } from "./RouteTarget.js"

/** One way of running the route's transfers that a probe tries. */
export interface Setting {
  /** How the table names it: `4 streams`, `8 streams, window 8 MiB`, `2 at once`. */
  readonly label: string
  /** Adapter options set for this setting (undefined: the option is left out, the tool's default). */
  readonly options: Readonly<Record<string, unknown>>
  /** Transfers run side by side (the route's `maxConcurrentTransfers` it stands for). */
  readonly atOnce: number
  /** Lower is cheaper (fewer streams, connections or buffers); ties go to the cheaper. */
  readonly cost: number
}

/** What one setting measured. */
export interface Measured {
  readonly setting: Setting
  /** Seconds of the small probe: what a transfer costs before its data flows. */
  readonly setupSeconds: number
  /** Seconds of the large probe, start to end. */
  readonly seconds: number
  /** Bytes per second over the large probe, all transfers of the setting together, setup included. */
  readonly wholeRate: number
  /** Bytes per second once data flows (the large probe less the small one), all transfers together. */
  readonly rate: number
  /** The large probe took hardly longer than the small one: `rate` is `wholeRate`, and a larger probe would tell more. */
  readonly tooSmall: boolean
  /** Why the setting failed; it is then left out of the choice. */
  readonly error?: string
}

/** How big and how long the probes are. */
export interface ProbeOptions {
  /** Bytes of the large probe (the small one is 64 KiB). */
  readonly probeBytes: number
  /** Longest a single probe transfer may take before the setting counts as failed. */
  readonly limitSeconds: number
  /** Times each setting is probed; the fastest round counts, since a busy host only ever slows a probe down (default 1). */
  readonly rounds?: number
  /** Told before each setting is probed and after, for progress lines. */
  readonly onProgress?: (line: string) => Effect.Effect<void>
}

/** Bytes of the small probe. */
export const smallProbeBytes = 64 * 1024

const mib = 1024 ** 2

/** The settings tried first; bbcp's windows follow at the best stream count (`windowSettings`). */
export const firstSettings = (target: RouteTarget): ReadonlyArray<Setting> => {
  const o = target.config.options
  switch (target.config.adapter) {
    case "bbcp":
      return [1, 4, 8, 16].map((n) => ({
        label: `${n} stream${n === 1 ? "" : "s"}${windowLabel(o.window)}`,
        options: { streams: n },
        atOnce: 1,
        cost: n * 100
      }))
    case "rsync":
      return [1, 2, 4].map((n) => ({ label: `${n} at once`, options: {}, atOnce: n, cost: n * 100 }))
    default:
      return [{ label: "one copy", options: {}, atOnce: 1, cost: 0 }]
  }
}

const windowLabel = (
  w: unknown
) => (w === undefined ? "" : `, window ${typeof w === "number" ? `${(w / mib).toFixed(w % mib === 0 ? 0 : 1)} MiB` : String(w)}`)

/**
 * bbcp's windows at the stream count that did best: the tool's default (the kernel autotunes)
 * and fixed windows of 8 and 32 MiB, less the one the streams were measured with.
 */
export const windowSettings = (target: RouteTarget, streams: number): ReadonlyArray<Setting> => {
  if (target.config.adapter !== "bbcp") return []
  const current = target.config.options.window
  const windows: ReadonlyArray<number | undefined> = [undefined, 8 * mib, 32 * mib]
  return windows
    .filter((w) => w !== current && !(typeof current === "string" && w !== undefined && sameSize(current, w)))
    .map((w) => ({
      label: `${streams} stream${streams === 1 ? "" : "s"}${w === undefined ? ", default window" : windowLabel(w)}`,
      options: { streams, window: w },
      atOnce: 1,
      cost: streams * 100 + (w === undefined ? 0 : 1 + w / mib / 1000)
    }))
}

const sameSize = (text: string, bytes: number) => Topology.parseBytes(text) === bytes

/** The options a route runs with under a setting (left-out options removed). */
export const optionsWith = (target: RouteTarget, setting: Setting): Record<string, unknown> =>
  Object.fromEntries(Object.entries({ ...target.config.options, ...setting.options }).filter(([, v]) => v !== undefined))

/**
 * The recommended setting: the cheapest whose rate is within `tolerance` (a share, 0.05 = 5%) of
 * the best measured; undefined when every setting failed.
 */
export const recommend = (measured: ReadonlyArray<Measured>, tolerance = 0.05): Measured | undefined => {
  const ok = measured.filter((m) => m.error === undefined)
  const best = ok.reduce<Measured | undefined>((b, m) => (b === undefined || m.rate > b.rate ? m : b), undefined)
  if (best === undefined) return undefined
  return ok.filter((m) => m.rate >= best.rate * (1 - tolerance)).reduce((c, m) => (m.setting.cost < c.setting.cost ? m : c))
}

/** The best measured setting by rate. */
export const best = (measured: ReadonlyArray<Measured>): Measured | undefined =>
  measured.filter((m) => m.error === undefined).reduce<Measured | undefined>(
    (b, m) => (b === undefined || m.rate > b.rate ? m : b),
    undefined
  )

const writeRandom = async (file: string, bytes: number) => {
  const chunk = Buffer.alloc(Math.min(bytes, 4 * mib))
  const fh = await fs.open(file, "wx")
  try {
    for (let written = 0; written < bytes;) {
      const n = Math.min(chunk.length, bytes - written)
      randomFillSync(chunk, 0, n)
      await fh.write(chunk, 0, n)
      written += n
    }
    // on disk before the first probe reads it: write-back competing with that probe would slow it alone
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * Probes the route with every setting and returns what each measured. The probe folders exist
 * only inside the returned effect: they are removed at both ends when it ends, fails or is
 * interrupted. Call `RouteTarget.checkEnds` first so an unreachable end fails before anything is written.
 */
export const probe = (target: RouteTarget, options: ProbeOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const adapterName = target.config.adapter
      const folder = `${TemporaryNames.diskPrefix}route-bench-${randomBytes(6).toString("hex")}`
      const file = (label: string) => `${folder}/${folder}-${label}`
      const say = options.onProgress ?? (() => Effect.void)
      // the destination's folder goes first so a failure half-way through writing the sources leaves nothing there either
      const destination = endpointsOf(target, folder, folder).destination
      yield* Effect.addFinalizer(() => TransferHost.remove(adapterName, destination).pipe(Effect.ignore))
      const sourceDir = path.join(target.source.root, folder)
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            await fs.mkdir(sourceDir)
            await writeRandom(path.join(target.source.root, file("small")), smallProbeBytes)
            await writeRandom(path.join(target.source.root, file("large")), options.probeBytes)
          },
          catch: (e) =>
            new RouteBenchError({
              reason: "Unreachable",
              detail: `route ${target.name}: cannot write the probes in ${sourceDir}: ${e instanceof Error ? e.message : String(e)}`
            })
        }),
        () => Effect.promise(() => fs.rm(sourceDir, { recursive: true, force: true }))
      )
      let run = 0
      /** Sends the probe `label` with `setting` `atOnce` times side by side; seconds start to end. */
      const send = (setting: Setting, label: "small" | "large") =>
        Effect.gen(function* () {
          const adapter = yield* Effect.try({
            try: () =>
              Either.getOrThrowWith(
                TransferAdapterRegistry.build(Adapters.builtInRegistry, adapterName, optionsWith(target, setting)),
                (problems) => new Error(problems.join("; "))
              ),
            catch: (e) => (e instanceof Error ? e.message : String(e))
          })
          run++
          const keys = Array.from({ length: setting.atOnce }, (_, i) => `${folder}/${folder}-run${run}-${label}-${i}`)
          // the route's limit shared as a worker shares it: by the transfers the route runs at once
          const concurrent = adapterName === "rsync" ? setting.atOnce : target.route.maxConcurrentTransfers
          const share = Routes.transferShare({ ...target.route, maxConcurrentTransfers: concurrent })
          const samples: Array<Sample> = []
          const started = Date.now()
          yield* Effect.forEach(
            keys,
            (key, i) =>
              adapter
                .stream(
                  {
                    ...endpointsOf(target, file(label), key),
                    kind: "file",
                    ...(share === undefined || !adapter.capabilities.bandwidthLimit ? {} : { bandwidthLimit: share })
                  },
                  { verify: false, retry: TransferAdapter.noRetry }
                )
                .pipe(
                  Stream.runForEach((e) => (e._tag === "Progress"
                    ? Effect.sync(() => samples.push({ transfer: i, ms: Date.now(), bytes: e.bytes }))
                    : Effect.void)
                  ),
                  Effect.mapError((e) => e.message)
                ),
            { concurrency: "unbounded", discard: true }
          ).pipe(
            Effect.timeoutFail({
              duration: `${options.limitSeconds} seconds`,
              onTimeout: () => `no completion within ${options.limitSeconds} s`
            })
          )
          const seconds = (Date.now() - started) / 1000
          // each run's copies go at once, so the destination never holds more than one setting's probes
          yield* Effect.forEach(
            keys,
            (key) => TransferHost.remove(adapterName, endpointsOf(target, file(label), key).destination).pipe(Effect.ignore),
            { discard: true }
          )
          return { seconds, steady: steadyRate(samples, options.probeBytes * setting.atOnce) }
        })
      const measure = (setting: Setting) =>
        Effect.gen(function* () {
          yield* say(`probing ${setting.label} ...`)
          let fastest: Measured | undefined
          for (let round = 0; round < Math.max(1, options.rounds ?? 1); round++) {
            const outcome = yield* Effect.either(Effect.all([send(setting, "small"), send(setting, "large")]))
            if (Either.isLeft(outcome)) {
              fastest = { setting, setupSeconds: 0, seconds: 0, wholeRate: 0, rate: 0, tooSmall: false, error: outcome.left }
              break
            }
            const r = figures(setting, outcome.right[0].seconds, outcome.right[1].seconds, options.probeBytes, outcome.right[1].steady)
            if (fastest === undefined || r.rate > fastest.rate) fastest = r
          }
          const m: Measured = fastest!
          yield* say(
            m.error === undefined
              ? `  ${setting.label}: ${(m.rate / 1e6).toFixed(1)} MB/s, setup ${m.setupSeconds.toFixed(2)} s`
              : `  ${setting.label}: failed: ${m.error}`
          )
          return m
        })
      // untimed: the first connection to the far host (name lookup, caches) is no setting's cost
      const settings = firstSettings(target)
      yield* say("warming up ...")
      yield* Effect.ignore(send(settings[0]!, "small"))
      const measured: Array<Measured> = []
      for (const s of settings) measured.push(yield* measure(s))
      const first = best(measured)
      if (first !== undefined && target.config.adapter === "bbcp") {
        for (const s of windowSettings(target, Number(first.setting.options.streams))) measured.push(yield* measure(s))
      }
      return measured
    })
  )

/** A progress report of one of a setting's transfers: its bytes so far, and when. */
export interface Sample {
  readonly transfer: number
  readonly ms: number
  readonly bytes: number
}

/**
 * The rate of all transfers together once past their ramp-up, from their progress reports: from
 * the first report at which a quarter of the bytes had gone to the last report. TCP's slow start
 * takes seconds on a long link, and more streams get through it sooner, so a rate over the whole
 * probe would favour many streams where a bundle of hundreds of GB flows at the steady rate.
 * Undefined when the reports span less than a second (a probe too small, or a tool that reports
 * rarely).
 */
export const steadyRate = (samples: ReadonlyArray<Sample>, totalBytes: number): number | undefined => {
  const current = new Map<number, number>()
  const series = [...samples].sort((a, b) => a.ms - b.ms).map((x) => {
    current.set(x.transfer, x.bytes)
    return { ms: x.ms, bytes: [...current.values()].reduce((n, b) => n + b, 0) }
  })
  const from = series.find((x) => x.bytes >= totalBytes / 4)
  const to = series[series.length - 1]
  if (from === undefined || to === undefined || to.ms - from.ms < 1000 || to.bytes <= from.bytes) return undefined
  return ((to.bytes - from.bytes) * 1000) / (to.ms - from.ms)
}

/**
 * The figures of one setting from its two probes. The rate is the large probe's steady rate when
 * its progress reports give one; else its extra bytes over its extra time beside the small probe;
 * when it took hardly longer than the small one (under a quarter of its time is data) that
 * difference is noise, and the whole rate stands.
 */
export const figures = (setting: Setting, smallSeconds: number, largeSeconds: number, probeBytes: number, steady?: number): Measured => {
  const bytes = probeBytes * setting.atOnce
  const wholeRate = bytes / Math.max(largeSeconds, 1e-3)
  const flowing = largeSeconds - smallSeconds
  const tooSmall = steady === undefined && flowing < 0.25 * largeSeconds
  const rate = steady ?? (tooSmall ? wholeRate : ((probeBytes - smallProbeBytes) * setting.atOnce) / flowing)
  return { setting, setupSeconds: smallSeconds, seconds: largeSeconds, wholeRate, rate, tooSmall }
}
