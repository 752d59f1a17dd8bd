/**
 * Runs every query of an InfluxDB dashboard's panels as Grafana would for a time range, and says
 * what is wrong: a query refused, one that finds no data (with what was written to its
 * measurement), a measurement or field never written, or a joined panel whose queries share no
 * key.
 */
import * as Effect from "effect/Effect"
import { host } from "./InfluxQueries.js"
import type * as RealInflux from "./RealInflux.js"

const escapeRegex = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&")

/** A dashboard query as Grafana would send it for the given range. */
const substitute = (q: string, fromMs: number, toMs: number) =>
  q.replaceAll("$timeFilter", `time >= ${fromMs}ms and time <= ${toMs}ms`).replaceAll("$__interval", "1s").replaceAll(
    "$host",
    escapeRegex(host)
  )

/**
 * What is wrong with the panels' queries between `fromMs` and `toMs`, as the reader user, given
 * the fields written per measurement; empty when every query finds data.
 */
export const dashboardFailures = (
  influx: RealInflux.Server,
  panels: ReadonlyArray<any>,
  fields: ReadonlyMap<string, ReadonlyMap<string, string>>,
  fromMs: number,
  toMs: number
) =>
  Effect.gen(function* () {
    const failures: Array<string> = []
    for (const panel of panels) {
      const answers: Array<ReadonlyArray<RealInflux.Series>> = []
      for (const target of panel.targets) {
        const q = substitute(target.query, fromMs, toMs)
        const series = yield* Effect.promise((): Promise<ReadonlyArray<RealInflux.Series> | string> =>
          influx.query(q, influx.reader).catch((e: Error) => e.message)
        )
        if (typeof series === "string") {
          failures.push(`"${panel.title}" ${target.refId}: ${series}`)
          continue
        }
        answers.push(series)
        const values = series.flatMap((s) => s.values.flatMap((v) => v.slice(1))).filter((v) => typeof v === "number")
        if (values.length === 0) {
          // What was written to the measurement, so a failure says whether the data or the query is wrong.
          const measurement = /FROM "([a-z_]+)"/.exec(target.query)?.[1]
          const written = measurement === undefined ?
            [] :
            yield* Effect.promise(() =>
              influx.query(`SELECT * FROM "${measurement}" WHERE time >= ${fromMs}ms`, influx.reader).catch(() => [])
            )
          failures.push(`"${panel.title}" ${target.refId} found no data: ${q}\n  written: ${JSON.stringify(written).slice(0, 4000)}`)
        }
        // Every measurement and field the query names was written.
        const measurements = [...target.query.matchAll(/FROM "([a-z_]+)"/g)].map((m) => m[1]!)
        for (const m of measurements) if (!fields.has(m)) failures.push(`"${panel.title}" reads ${m}, which was never written`)
        for (const [, field] of target.query.matchAll(/\("(value|sum|count|le_[0-9.]+|le_\+Inf)"\)/g)) {
          if (!fields.get(measurements[0]!)?.has(field!)) {
            failures.push(`"${panel.title}" reads ${measurements[0]}.${field}, never written`)
          }
        }
      }
      // A panel Grafana joins by a tag (fill = used / capacity) has rows to join.
      const join = (panel.transformations ?? []).find((t: any) => t.id === "joinByField")?.options.byField
      if (join !== undefined) {
        const keys = answers.map((series) => new Set(series.map((s) => s.tags?.[join])))
        const common = [...keys[0]!].filter((k) => keys.every((set) => set.has(k)))
        if (common.length === 0) failures.push(`"${panel.title}": its queries have no ${join} in common`)
      }
    }
    return failures
  })
