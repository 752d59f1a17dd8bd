// @ts-check
/**
 * Sites and their data locations with fill level and health (the transfer circuit breaker and
 * the last failure), routes with their throughput, and the operator's switch that takes a
 * location out of service for maintenance and back (`PATCH /locations/:id/availability`), each
 * recorded in the location's history (`#/locations/<id>`).
 */
import * as Api from "../api.js"
import { badge, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { act, errorBox, lookups } from "../view.js"

/**
 * The health of a location or route as one word: out of service when an operator paused it,
 * else what the circuit breaker says.
 * @param {{ state: string, reason?: string, retryInMs?: number }} circuit
 * @param {boolean} [paused]
 */
const health = (circuit, paused = false) => {
  if (paused) return h("span", null, badge("paused"))
  if (circuit.state === "closed") return badge("healthy")
  return h(
    "span",
    { title: circuit.reason ?? "" },
    badge(circuit.state === "open" ? "down" : "degraded"),
    circuit.retryInMs === undefined ? "" : ` probe in ${F.duration(circuit.retryInMs)}`
  )
}

/**
 * The fill of a location as a meter, with the figures in words for screen readers and people.
 * @param {any} l
 */
const fill = (l) =>
  l.capacityBytes === null
    ? `${F.bytes(l.usedBytes)} used (no capacity set)`
    : h(
      "span",
      null,
      h("meter", { min: 0, max: 1, low: 0.75, high: 0.9, optimum: 0.2, value: l.fillFraction ?? 0, "aria-label": `${l.name} fill` }),
      ` ${Math.round((l.fillFraction ?? 0) * 100)} % (${F.bytes(l.usedBytes)} of ${F.bytes(l.capacityBytes)})`
    )

/**
 * The Disable / Enable switch of one location.
 * @param {import("../main.js").Context} ctx
 * @param {any} l
 * @param {() => Promise<void>} reload
 * @param {HTMLElement} status where the outcome is shown (outside the refreshed tables)
 */
const availability = (ctx, l, reload, status) => {
  const inService = l.readable && l.writable && l.deletable
  const reason = /** @type {HTMLInputElement} */ (h("input", {
    type: "text",
    maxlength: 500,
    placeholder: "reason (optional)",
    "aria-label": `Why ${inService ? "disable" : "enable"} ${l.name}`
  }))
  const button = /** @type {HTMLButtonElement} */ (h("button", {
    type: "button",
    class: inService ? "danger" : "",
    "data-location": l.name,
    onclick: () =>
      void act(button, status, async () => {
        const v = !inService
        const text = reason.value.trim()
        await Api.patch(`/locations/${l.id}/availability`, {
          readable: v,
          writable: v,
          deletable: v,
          ...(text === "" ? {} : { reason: text })
        })
        await lookups(true)
        await reload()
        return `${l.name} ${v ? "enabled" : "disabled"}.`
      })
  }, inService ? "Disable" : "Enable"))
  return h("span", { class: "actions" }, reason, button)
}

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const operator = ctx.session.role === "operator" || ctx.session.role === "admin"
  const body = h("div")
  const notice = h("div", { "aria-live": "polite" })
  replace(ctx.main, h("h1", null, "Sites and locations"), notice, body)
  const load = async () => {
    // Do not rebuild the tables under an operator typing a reason.
    if (document.activeElement instanceof HTMLInputElement && body.contains(document.activeElement)) return
    const [s, { sites, locations }] = await Promise.all([Api.get("/status", { failedLimit: 0 }), lookups()])
    if (!ctx.current()) return
    const full = s.scope === "full"
    const sections = sites.map((site) => {
      const rows = full ? s.locations.filter((/** @type {any} */ l) => l.siteId === site.id) : locations.filter((l) => l.siteId === site.id)
      const columns = [
        // An operator's way to a location's history (its switches, its configuration changes).
        {
          header: "Location",
          cell: (/** @type {any} */ l) => (operator ? link(`#/locations/${l.id}`, h("strong", null, l.name)) : h("strong", null, l.name))
        },
        { header: "Type", cell: (/** @type {any} */ l) => l.type },
        { header: "Storage", cell: (/** @type {any} */ l) => l.technology },
        {
          header: "Read / write / delete",
          cell: (/** @type {any} */ l) => [l.readable ? "on" : "off", l.writable ? "on" : "off", l.deletable ? "on" : "off"].join(" / ")
        }
      ]
      if (full) {
        columns.push(
          { header: "Fill", cell: (l) => fill(l) },
          { header: "Copies", cell: (l) => `${F.count(l.presentCopies)} (${F.bytes(l.presentBytes)})` },
          { header: "Health", cell: (l) => health(l.circuit, !(l.readable && l.writable)) },
          {
            header: "Last failure",
            cell: (l) => (l.lastFailure ? `${F.time(l.lastFailure.at)}: ${l.lastFailure.errorMessage ?? ""}` : "-")
          }
        )
      }
      if (operator) columns.push({ header: "Service", cell: (l) => availability(ctx, l, load, notice) })
      return h(
        "section",
        { "aria-labelledby": `site-${site.shortName}`, "data-site": site.shortName },
        h("h2", { id: `site-${site.shortName}` }, `${site.name} (${site.shortName}, ${site.role})`),
        table(`Locations at ${site.name}`, columns, rows, "No locations.")
      )
    })
    const routes = full
      ? [
        h("h2", null, "Routes"),
        table(
          "Routes between sites",
          [
            { header: "Route", cell: (r) => [r.fromSite, r.viaSite, r.toSite].filter((x) => x !== null).join(" → ") },
            { header: "Adapter", cell: (r) => r.adapter },
            { header: "Health", cell: (r) => health(r.circuit) },
            {
              header: "Last hour",
              numeric: true,
              cell: (r) => `${F.count(r.lastHour.transfers)} moves, ${F.bytes(r.lastHour.bytes)}, ${F.rate(r.lastHour.bytesPerSecond)}`
            },
            {
              header: "Last 24 h",
              numeric: true,
              cell: (r) =>
                `${F.count(r.last24Hours.transfers)} moves, ${F.bytes(r.last24Hours.bytes)}, ${F.rate(r.last24Hours.bytesPerSecond)}`
            },
            { header: "Failed (24 h)", numeric: true, cell: (r) => F.count(r.last24Hours.failedAttempts) },
            {
              header: "Last failure",
              cell: (r) => (r.lastFailure ? `${F.time(r.lastFailure.at)}: ${r.lastFailure.errorMessage ?? ""}` : "-")
            }
          ],
          s.routes,
          "No routes."
        )
      ]
      : [h("p", { class: "muted" }, "Fill levels, health and routes are shown to operators and admins.")]
    replace(body, h("p", { class: "refresh" }, `Snapshot of ${F.time(s.at)}; refreshed every 5 seconds.`), ...sections, ...routes)
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading sites"))
    return
  }
  ctx.every(5000, load)
}
