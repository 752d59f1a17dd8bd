// @ts-check
/**
 * Small SVG charts drawn from data, for the throughput page: no chart library to download, and
 * every label is a text node (API values never become markup).
 */

const ns = "http://www.w3.org/2000/svg"

/**
 * An SVG element with attributes.
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 */
const s = (tag, attrs = {}, text) => {
  const el = document.createElementNS(ns, tag)
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v))
  if (text !== undefined) el.textContent = text
  return el
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. @param {number} max */
const niceMax = (max) => {
  if (max <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(max))
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= max) ?? max
}

/**
 * The chart's frame: the titled SVG, four grid lines labelled with values up to `max`, and the
 * two axes; both charts draw on it.
 * @param {{ title: string, width: number, height: number, left: number, top: number, plotW: number, plotH: number, max: number, format: (v: number) => string }} f
 */
const frame = ({ title, width, height, left, top, plotW, plotH, max, format }) => {
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title })
  svg.appendChild(s("title", {}, title))
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4
    svg.appendChild(s("line", { x1: left, x2: left + plotW, y1: y, y2: y, class: "grid-line" }))
    svg.appendChild(s("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, format((max * i) / 4)))
  }
  svg.appendChild(s("line", { x1: left, x2: left, y1: top, y2: top + plotH, class: "axis" }))
  svg.appendChild(s("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH, class: "axis" }))
  return svg
}

/**
 * A bar chart of values over labelled buckets (time on the x axis), with a title for screen
 * readers and a tooltip per bar.
 * @param {{ title: string, bars: Array<{ label: string, value: number, failed?: boolean, tip: string }>, format: (v: number) => string }} options
 */
export const bars = ({ title, bars, format }) => {
  const width = 760
  const height = 240
  const left = 70
  const bottom = 40
  const top = 12
  const plotW = width - left - 10
  const plotH = height - top - bottom
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)))
  const svg = frame({ title, width, height, left, top, plotW, plotH, max, format })
  const step = bars.length === 0 ? plotW : plotW / bars.length
  const labelEvery = Math.max(1, Math.ceil(bars.length / 8))
  bars.forEach((b, i) => {
    const hgt = (plotH * b.value) / max
    const rect = s("rect", {
      x: left + i * step + step * 0.15,
      y: top + plotH - hgt,
      width: Math.max(1, step * 0.7),
      height: hgt,
      class: b.failed ? "bar failed" : "bar"
    })
    rect.appendChild(s("title", {}, b.tip))
    svg.appendChild(rect)
    if (i % labelEvery === 0) {
      svg.appendChild(s("text", { x: left + i * step + step / 2, y: height - bottom + 16, "text-anchor": "middle" }, b.label))
    }
  })
  if (bars.length === 0) svg.appendChild(s("text", { x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no data yet"))
  return svg
}

/**
 * A scatter of points in time (x) against a value (y), e.g. the throughput of each attempt.
 * @param {{ title: string, points: Array<{ t: number, value: number, tip: string }>, format: (v: number) => string, formatTime: (t: number) => string }} options
 */
export const scatter = ({ title, points, format, formatTime }) => {
  const width = 760
  const height = 240
  const left = 70
  const bottom = 40
  const top = 12
  const plotW = width - left - 16
  const plotH = height - top - bottom
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)))
  const t0 = Math.min(...points.map((p) => p.t))
  const t1 = Math.max(...points.map((p) => p.t))
  const span = t1 - t0 || 1
  const svg = frame({ title, width, height, left, top, plotW, plotH, max, format })
  if (points.length === 0) {
    svg.appendChild(s("text", { x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" }, "no data yet"))
    return svg
  }
  const x = (/** @type {number} */ t) => left + (plotW * (t - t0)) / span
  const y = (/** @type {number} */ v) => top + plotH - (plotH * v) / max
  const sorted = [...points].sort((a, b) => a.t - b.t)
  svg.appendChild(s("polyline", { class: "line", points: sorted.map((p) => `${x(p.t).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }))
  for (const p of sorted) {
    const dot = s("circle", { cx: x(p.t).toFixed(1), cy: y(p.value).toFixed(1), r: 3.5, class: "dot" })
    dot.appendChild(s("title", {}, p.tip))
    svg.appendChild(dot)
  }
  svg.appendChild(s("text", { x: left, y: height - bottom + 16, "text-anchor": "start" }, formatTime(t0)))
  svg.appendChild(s("text", { x: left + plotW, y: height - bottom + 16, "text-anchor": "end" }, formatTime(t1)))
  return svg
}
