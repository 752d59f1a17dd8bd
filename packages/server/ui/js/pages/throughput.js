// @ts-check
/**
 * Transfer throughput, drawn from the DataTransfer attempts themselves: bytes moved per time
 * bucket, the throughput of each completed attempt, and a summary per pair of locations. The
 * charts are inline SVG built by `chart.js`; nothing is downloaded.
 */
import * as Api from "../api.js"
import { bars, scatter } from "../chart.js"
import { h, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox, lookups, nameOf } from "../view.js"

/**
 * A bucket width that gives a readable number of bars over the span.
 * @param {number} spanMs
 */
const bucketFor = (spanMs) => [60_000, 300_000, 900_000, 3_600_000, 6 * 3_600_000, 86_400_000].find((b) => spanMs / b <= 48) ?? 86_400_000

/** @param {number} t */
const clock = (t) => new Date(t).toISOString().slice(11, 16)

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const body = h("div")
  replace(ctx.main, h("h1", null, "Transfer throughput"), body)
  const load = async () => {
    const [attempts, { locations }] = await Promise.all([Api.all("/transfers", {}, 5000), lookups()])
    if (!ctx.current()) return
    const finished = attempts.filter((t) => t.finishedAt !== null)
    const done = finished.filter((t) => t.status === "completed")
    const failed = finished.filter((t) => t.status === "failed")
    const times = finished.map((t) => Date.parse(t.finishedAt))
    const t0 = Math.min(...times)
    const t1 = Math.max(...times)
    const bucket = bucketFor(t1 - t0)
    /** @type {Array<{ label: string, value: number, failed?: boolean, tip: string }>} */
    const buckets = []
    if (finished.length > 0) {
      const first = Math.floor(t0 / bucket) * bucket
      for (let b = first; b <= t1; b += bucket) {
        const inside = finished.filter((t) => Date.parse(t.finishedAt) >= b && Date.parse(t.finishedAt) < b + bucket)
        const moved = inside.filter((t) => t.status === "completed").reduce((n, t) => n + t.bytesTransferred, 0)
        const bad = inside.filter((t) => t.status === "failed").length
        buckets.push({
          label: clock(b),
          value: moved,
          failed: bad > 0 && moved === 0,
          tip: `${clock(b)} UTC: ${F.bytes(moved)} in ${inside.length - bad} transfer(s)${bad > 0 ? `, ${bad} failed` : ""}`
        })
      }
    }
    /** @type {Map<string, { from: string, to: string, n: number, bytes: number, ms: number, failed: number }>} */
    const pairs = new Map()
    for (const t of finished) {
      const key = `${t.fromLocationId}>${t.toLocationId}`
      const p = pairs.get(key) ??
        { from: nameOf(locations, t.fromLocationId), to: nameOf(locations, t.toLocationId), n: 0, bytes: 0, ms: 0, failed: 0 }
      if (t.status === "completed") {
        p.n++
        p.bytes += t.bytesTransferred
        p.ms += t.durationMs ?? 0
      } else p.failed++
      pairs.set(key, p)
    }
    replace(
      body,
      h(
        "p",
        null,
        `${F.count(done.length)} completed and ${F.count(failed.length)} failed attempts; ${
          F.bytes(done.reduce((n, t) => n + t.bytesTransferred, 0))
        } moved. Bars are ${F.duration(bucket)} wide, UTC.`
      ),
      h(
        "figure",
        null,
        bars({ title: "Bytes moved per time bucket", bars: buckets, format: F.bytes }),
        h(
          "figcaption",
          { class: "legend" },
          "Bytes moved by completed transfers per bucket; red: only failed attempts in the bucket. Hover a bar for figures."
        )
      ),
      h(
        "figure",
        null,
        scatter({
          title: "Throughput of each completed attempt",
          points: done.filter((t) => t.throughputBytesPerSecond !== null).map((t) => ({
            t: Date.parse(t.finishedAt),
            value: t.throughputBytesPerSecond,
            tip: `${F.time(t.finishedAt)}: ${F.rate(t.throughputBytesPerSecond)}, ${F.bytes(t.bytesTransferred)} in ${
              F.duration(t.durationMs)
            } (${t.adapter})`
          })),
          format: F.rate,
          formatTime: (t) => `${clock(t)} UTC`
        }),
        h("figcaption", { class: "legend" }, "Throughput of each completed attempt (bytes over its own duration).")
      ),
      h("h2", null, "By pair of locations"),
      table(
        "Transfers per pair of locations",
        [
          { header: "From", cell: (p) => p.from },
          { header: "To", cell: (p) => p.to },
          { header: "Completed", numeric: true, cell: (p) => F.count(p.n) },
          { header: "Bytes", numeric: true, cell: (p) => F.bytes(p.bytes) },
          { header: "Throughput while busy", numeric: true, cell: (p) => (p.ms > 0 ? F.rate((p.bytes * 1000) / p.ms) : "-") },
          { header: "Failed", numeric: true, cell: (p) => F.count(p.failed) }
        ],
        [...pairs.values()],
        "Nothing has moved yet."
      )
    )
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading transfers"))
    return
  }
  ctx.every(10_000, load)
}
