// @ts-check
/**
 * The science catalog: Sources with their ICRS coordinates, the programs the user may see with
 * their proprietary periods and sub-programs, observing modes, and each instrument's modules with
 * their bands. Admins register a Source here; the API checks the coordinates and says which one is
 * wrong, and nothing is registered then.
 */
import * as Api from "../api.js"
import { h, replace, table } from "../dom.js"
import * as F from "../format.js"
import { act, errorBox, lookups, nameOf, pager } from "../view.js"

/**
 * Degrees as the catalog shows them, or "-".
 * @param {number | null | undefined} deg
 */
const degrees = (deg) => (deg === null || deg === undefined ? "-" : `${deg.toFixed(5)}°`)

/**
 * A wavelength band in metres as people read it: millimetres and the frequencies they are.
 * @param {number | null} emMin
 * @param {number | null} emMax
 */
export const band = (emMin, emMax) => {
  if (emMin === null || emMax === null) return "-"
  const ghz = (/** @type {number} */ m) => (299_792_458 / m / 1e9).toFixed(1)
  return `${(emMin * 1e3).toPrecision(4)}–${(emMax * 1e3).toPrecision(4)} mm (${ghz(emMax)}–${ghz(emMin)} GHz)`
}

/**
 * A proprietary period as people read it.
 * @param {number | null} days
 */
const period = (days) => (days === null ? "never public" : days === 0 ? "public at once" : `${days} days after each observation`)

/**
 * The form an admin registers a Source with.
 * @param {() => void} after
 */
const sourceForm = (after) => {
  const outcome = h("div", { "aria-live": "polite" })
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "submit" }, "Register source"))
  const form = /** @type {HTMLFormElement} */ (h(
    "form",
    {
      class: "filters",
      "aria-label": "Register a source",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const data = new FormData(form)
        const text = (/** @type {string} */ k) => String(data.get(k) ?? "").trim()
        const solarSystem = data.get("solarSystem") === "on"
        /** @type {Record<string, unknown>} */
        const body = { name: text("name"), solarSystem }
        // A number field left empty is absent, never zero: 0° is a real position.
        if (text("raDeg") !== "") body.raDeg = Number(text("raDeg"))
        if (text("decDeg") !== "") body.decDeg = Number(text("decDeg"))
        void act(button, outcome, async () => {
          const s = await Api.post("/sources", body)
          form.reset()
          after()
          return `Registered ${s.name}.`
        })
      }
    },
    h("label", null, "Name", h("input", { name: "name", required: true, maxlength: 200 })),
    h("label", null, "RA (ICRS, degrees)", h("input", { name: "raDeg", inputmode: "decimal" })),
    h("label", null, "Dec (ICRS, degrees)", h("input", { name: "decDeg", inputmode: "decimal" })),
    h("label", null, h("input", { type: "checkbox", name: "solarSystem" }), " Solar-system body"),
    button
  ))
  return h("section", { class: "card", "aria-labelledby": "new-source" }, h("h2", { id: "new-source" }, "Register a source"), form, outcome)
}

/**
 * A one-row form of an admin's change: its fields, a Save button, and what the API said beside
 * it. `submit` gets the form's values and answers the sentence to show.
 * @param {string} label what the form changes, for screen readers
 * @param {Array<{ name: string, label: string, value: string }>} fields
 * @param {(values: Record<string, string>) => Promise<string>} submit
 */
const inlineForm = (label, fields, submit) => {
  const outcome = h("span", { "aria-live": "polite" })
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "submit", class: "secondary" }, "Save"))
  const form = /** @type {HTMLFormElement} */ (h(
    "form",
    {
      class: "inline",
      "aria-label": label,
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const data = new FormData(form)
        const values = Object.fromEntries(fields.map((f) => [f.name, String(data.get(f.name) ?? "").trim()]))
        void act(button, outcome, () => submit(values)).then((ok) => {
          if (ok) button.disabled = false
        })
      }
    },
    fields.map((f) => h("label", null, f.label, " ", h("input", { name: f.name, value: f.value, size: 8, inputmode: "decimal" }))),
    button,
    outcome
  ))
  return form
}

/**
 * A number from a form field, or null when it is empty.
 * @param {string} text
 */
const numberOrNull = (text) => (text === "" ? null : Number(text))

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const { query } = ctx
  const sources = h("div", { "aria-live": "polite" })
  const rest = h("div")
  const search = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Find sources",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const name = String(new FormData(/** @type {HTMLFormElement} */ (event.target)).get("name") ?? "").trim()
        ctx.go(`#/catalog${name === "" ? "" : `?${new URLSearchParams({ name })}`}`)
      }
    },
    h("label", null, "Source name contains", h("input", { name: "name", value: query.get("name") ?? "" })),
    h("button", { type: "submit" }, "Find")
  )

  const loadSources = async () => {
    try {
      const page = await Api.get("/sources", { name: query.get("name"), limit: 50, cursor: query.get("cursor") })
      if (!ctx.current()) return
      replace(
        sources,
        table(
          "Sources",
          [
            { header: "Source", cell: (s) => h("span", { title: s.description || s.id }, s.name) },
            { header: "RA (ICRS)", numeric: true, cell: (s) => degrees(s.raDeg) },
            { header: "Dec (ICRS)", numeric: true, cell: (s) => degrees(s.decDeg) },
            { header: "Kind", cell: (s) => (s.solarSystem ? "solar system" : "fixed") },
            { header: "Registered", cell: (s) => F.time(s.createdAt) }
          ],
          page.items,
          "No sources match."
        ),
        pager("/catalog", query, page.nextCursor)
      )
    } catch (e) {
      replace(sources, errorBox(e, "Loading sources"))
    }
  }

  replace(
    ctx.main,
    h("h1", null, "Catalog"),
    h(
      "p",
      null,
      "What is observed (Sources, ICRS degrees), the programs you may see with their proprietary periods, observing modes, and the bands of each instrument's modules. Raw data of archived observations is published through ObsCore with these."
    ),
    ctx.session.role === "admin" ? sourceForm(() => void loadSources()) : null,
    h("h2", { id: "sources" }, "Sources"),
    search,
    sources,
    rest
  )
  await loadSources()
  const admin = ctx.session.role === "admin"
  /** Shows a saved value in its cell, without reloading the tables (and losing what the API said). */
  const shown = (/** @type {string} */ selector, /** @type {string} */ text) => {
    const cell = rest.querySelector(selector)
    if (cell !== null) cell.textContent = text
  }
  try {
    const [programs, subPrograms, modes, { instruments }] = await Promise.all([
      Api.get("/programs"),
      Api.get("/sub-programs"),
      Api.get("/observing-modes"),
      lookups()
    ])
    const modules = (await Promise.all(instruments.map((/** @type {any} */ i) => Api.get("/instrument-modules", { instrumentId: i.id }))))
      .flat()
    if (!ctx.current()) return
    replace(
      rest,
      h("h2", { id: "programs" }, "Observing programs"),
      table(
        "Observing programs",
        [
          { header: "Program", cell: (p) => h("span", { title: p.id }, p.name) },
          { header: "Title", cell: (p) => p.title || "-" },
          { header: "Data public", cell: (p) => h("span", { "data-period": p.id }, period(p.proprietaryPeriodDays)) },
          {
            header: "Sub-programs",
            cell: (p) =>
              subPrograms.filter((/** @type {any} */ s) => s.observingProgramId === p.id).map((/** @type {any} */ s) => s.name).join(
                ", "
              ) || "-"
          },
          ...(admin ?
            [{
              header: "Change",
              cell: (/** @type {any} */ p) =>
                inlineForm(`Proprietary period of ${p.name}`, [{
                  name: "days",
                  label: "days (empty: never public)",
                  value: p.proprietaryPeriodDays === null ? "" : String(p.proprietaryPeriodDays)
                }], async (v) => {
                  const changed = await Api.patch(`/programs/${p.id}`, { proprietaryPeriodDays: numberOrNull(v.days) })
                  shown(`[data-period="${p.id}"]`, period(changed.proprietaryPeriodDays))
                  return `${changed.name}: ${period(changed.proprietaryPeriodDays)}.`
                })
            }] :
            [])
        ],
        programs,
        "No programs visible to you."
      ),
      h("h2", { id: "modes" }, "Observing modes"),
      table(
        "Observing modes",
        [
          { header: "Mode", cell: (m) => m.name },
          { header: "Description", cell: (m) => m.description || "-" }
        ],
        modes,
        "No observing modes registered."
      ),
      h("h2", { id: "modules" }, "Instrument modules"),
      table(
        "Instrument modules",
        [
          { header: "Instrument", cell: (m) => nameOf(instruments, m.instrumentId) },
          { header: "Module", cell: (m) => m.name },
          { header: "Band", cell: (m) => h("span", { "data-band": m.id }, band(m.emMin, m.emMax)) },
          { header: "Product", cell: (m) => m.dataproductType ?? "-" },
          { header: "Polarization", cell: (m) => m.polStates ?? "-" },
          { header: "Field of view", numeric: true, cell: (m) => (m.fovDeg === null ? "-" : `${m.fovDeg}°`) },
          { header: "Resolution", numeric: true, cell: (m) => (m.resolutionArcsec === null ? "-" : `${m.resolutionArcsec}″`) },
          ...(admin ?
            [{
              header: "Change band",
              cell: (/** @type {any} */ m) =>
                inlineForm(`Band of ${m.name}`, [
                  { name: "minGHz", label: "from GHz", value: m.emMax === null ? "" : (299_792_458 / m.emMax / 1e9).toFixed(3) },
                  { name: "maxGHz", label: "to GHz", value: m.emMin === null ? "" : (299_792_458 / m.emMin / 1e9).toFixed(3) }
                ], async (v) => {
                  const min = numberOrNull(v.minGHz)
                  const max = numberOrNull(v.maxGHz)
                  const changed = await Api.patch(`/instrument-modules/${m.id}`, {
                    band: min === null && max === null ? null : { minHz: (min ?? NaN) * 1e9, maxHz: (max ?? NaN) * 1e9 }
                  })
                  shown(`[data-band="${m.id}"]`, band(changed.emMin, changed.emMax))
                  return `${changed.name}: ${band(changed.emMin, changed.emMax)}.`
                })
            }] :
            [])
        ],
        modules,
        "No instrument modules."
      )
    )
  } catch (e) {
    replace(rest, errorBox(e, "Loading the catalog"))
  }
}
