// @ts-check
/**
 * Observations (ExecutedObsUnits): a filtered, paged list, and one observation with its files,
 * its packages and where every copy of them is. A scientist sees only the programs granted to
 * them: the API filters, the UI shows what it gets.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { copiesSection, history } from "./packages.js"
import { errorBox, lookups, nameOf, pager } from "../view.js"

const statuses = ["pending", "scheduled", "in_progress", "completed", "failed"]

/** Above this many files, an observation's page does not ask for each file's copies. */
const maxFileCopyLookups = 300

/**
 * `<input type="datetime-local">` holds a wall-clock time without zone; the UI treats it as UTC,
 * like every time it shows.
 * @param {string | null} v
 */
const utc = (v) => (v === null || v === "" ? undefined : new Date(`${v}:00Z`).toISOString())

/**
 * The programs the user can filter by: the programs of the planned observations they may see.
 * The API has no program names for non-admins, so a program reads as its planned observations.
 * @param {any[]} obsUnits
 */
const programs = (obsUnits) => {
  /** @type {Map<string, string[]>} */
  const byProgram = new Map()
  for (const u of obsUnits) byProgram.set(u.observingProgramId, [...(byProgram.get(u.observingProgramId) ?? []), u.name])
  return [...byProgram.entries()].map(([id, names]) => ({ id, label: `${id.slice(0, 8)} (${[...new Set(names)].join(", ")})` }))
}

/** @param {import("../main.js").Context} ctx */
export const list = async (ctx) => {
  const { query } = ctx
  const { instruments, obsUnits } = await lookups()
  const select = (/** @type {string} */ name, /** @type {string} */ label, /** @type {Array<{ id: string, label: string }>} */ options) =>
    h(
      "label",
      null,
      label,
      h(
        "select",
        { name, id: `filter-${name}` },
        h("option", { value: "" }, "any"),
        options.map((o) => h("option", { value: o.id, selected: query.get(name) === o.id }, o.label))
      )
    )
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter observations",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const data = new FormData(/** @type {HTMLFormElement} */ (event.target))
        const q = new URLSearchParams()
        for (const [k, v] of data.entries()) if (typeof v === "string" && v !== "") q.set(k, v)
        ctx.go(`#/observations${q.size === 0 ? "" : `?${q}`}`)
      }
    },
    select("program", "Program", programs(obsUnits)),
    select("instrument", "Instrument", instruments.map((i) => ({ id: i.id, label: i.name }))),
    select("status", "State", statuses.map((s) => ({ id: s, label: s }))),
    h("label", null, "Started from (UTC)", h("input", { type: "datetime-local", name: "from", value: query.get("from") ?? "" })),
    h("label", null, "Started before (UTC)", h("input", { type: "datetime-local", name: "to", value: query.get("to") ?? "" })),
    h(
      "label",
      null,
      "Per page",
      h(
        "select",
        { name: "limit", id: "filter-limit" },
        ["5", "25", "100"].map((n) => h("option", { value: n, selected: (query.get("limit") ?? "25") === n }, n))
      )
    ),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/observations" }, "Clear")
  )

  const results = h("div", { "aria-live": "polite" })
  replace(ctx.main, h("h1", null, "Observations"), form, results)
  try {
    const page = await Api.get("/observations", {
      programId: query.get("program"),
      instrumentId: query.get("instrument"),
      status: query.get("status"),
      startFrom: utc(query.get("from")),
      startTo: utc(query.get("to")),
      limit: query.get("limit") ?? 25,
      cursor: query.get("cursor")
    })
    if (!ctx.current()) return
    const unit = (/** @type {string} */ id) => obsUnits.find((u) => u.id === id)
    replace(
      results,
      table(
        "Observations, in order of start time",
        [
          { header: "Observation", cell: (o) => h("a", { href: `#/observations/${o.id}`, title: o.id, class: "mono" }, F.short(o.id)) },
          { header: "Planned as", cell: (o) => unit(o.obsUnitId)?.name ?? F.short(o.obsUnitId) },
          { header: "Instrument", cell: (o) => nameOf(instruments, unit(o.obsUnitId)?.instrumentId) },
          { header: "Target", cell: (o) => unit(o.obsUnitId)?.target ?? "-" },
          { header: "Start", cell: (o) => F.time(o.startAt) },
          { header: "End", cell: (o) => F.time(o.endAt) },
          { header: "State", cell: (o) => badge(o.status) },
          { header: "Quality", cell: (o) => o.quality }
        ],
        page.items,
        "No observations match."
      ),
      pager("/observations", query, page.nextCursor)
    )
  } catch (e) {
    replace(results, errorBox(e, "Loading observations"))
  }
}

/**
 * The instrument's free metadata, one line per key: strings as they are, other values as JSON.
 * @param {Record<string, unknown>} value
 */
const metadata = (value) => {
  const entries = Object.entries(value ?? {})
  if (entries.length === 0) return "-"
  return h(
    "ul",
    { class: "plain" },
    entries.map(([k, v]) => h("li", null, h("span", { class: "mono" }, k), ": ", typeof v === "string" ? v : JSON.stringify(v)))
  )
}

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  const [o, { instruments, obsUnits, locations, sites }] = await Promise.all([
    Api.get(`/observations/${encodeURIComponent(id)}`),
    lookups()
  ])
  const unit = obsUnits.find((u) => u.id === o.obsUnitId)
  const [files, packages] = await Promise.all([
    // the observation's own data: a product's files and packages are on the product's page
    Api.all("/files", { observationId: id, kind: "raw" }, 2000),
    Api.all("/packages", { observationId: id, kind: "raw" }, 1000)
  ])
  if (!ctx.current()) return
  const modules = await Api.get("/instrument-modules", unit ? { instrumentId: unit.instrumentId } : {})
  // What was observed and how: the unit's Source, mode and sub-program, when it names them. The
  // unit is read afresh, since an admin may have linked it after the lookups were loaded.
  const links = await Api.get(`/obs-units/${o.obsUnitId}`).catch(() => unit)
  const [source, mode, subProgram] = await Promise.all([
    links?.sourceId ? Api.get(`/sources/${links.sourceId}`).catch(() => null) : null,
    links?.observingModeId ? Api.get(`/observing-modes/${links.observingModeId}`).catch(() => null) : null,
    links?.subObservingProgramId ? Api.get(`/sub-programs/${links.subObservingProgramId}`).catch(() => null) : null
  ])
  if (!ctx.current()) return
  const totalBytes = files.reduce((n, f) => n + f.sizeBytes, 0)
  const staging = ctx.session.role === "scientist" || ctx.session.role === "admin"
    ? h("p", null, h("a", { href: `#/staging?observation=${o.id}`, id: "stage-this" }, "Request staging of this observation…"))
    : null
  const products = ctx.session.role === "instrument"
    ? null
    : h(
      "p",
      null,
      h("a", { href: `#/products?observation=${o.id}`, id: "products-of-this" }, "Data products derived from this observation")
    )
  replace(
    ctx.main,
    h("h1", null, "Observation ", h("span", { class: "mono" }, o.id)),
    h(
      "section",
      { class: "card", "aria-labelledby": "obs-facts" },
      h("h2", { id: "obs-facts" }, "What the telescope did"),
      facts([
        ["Planned as", unit ? `${unit.name} (target ${unit.target})` : o.obsUnitId],
        ["Instrument", nameOf(instruments, unit?.instrumentId)],
        ["Program", h("span", { class: "mono" }, unit?.observingProgramId ?? "-")],
        ["Sub-program", subProgram?.name ?? "-"],
        [
          "Source",
          source === null ? "-" : source.raDeg === null
            ? `${source.name} (solar system)`
            : `${source.name} (RA ${source.raDeg.toFixed(5)}°, Dec ${source.decDeg.toFixed(5)}°, ICRS)`
        ],
        ["Observing mode", mode?.name ?? "-"],
        ["Start", F.time(o.startAt)],
        ["End", F.time(o.endAt)],
        ["State", badge(o.status)],
        ["Quality", o.quality],
        ["Files", `${F.count(files.length)} (${F.bytes(totalBytes)})`],
        ["Metadata", metadata(o.metadata)]
      ]),
      staging,
      products
    ),
    h("h2", { id: "packages" }, "Packages"),
    table(
      "Packages of this observation",
      [
        { header: "Package", cell: (p) => link(`#/packages/${p.id}`, h("span", { class: "mono", title: p.id }, F.short(p.id))) },
        { header: "Module", cell: (p) => nameOf(modules, p.instrumentModuleId) },
        { header: "Journey", cell: (p) => badge(p.journey) },
        { header: "Size", numeric: true, cell: (p) => F.bytes(p.sizeBytes) },
        { header: "Error", cell: (p) => p.errorMessage ?? "" }
      ],
      packages,
      "Not packaged yet."
    ),
    h("h2", { id: "copies" }, "Where every copy is"),
    // Files have copies of their own (at the SOURCE until cleanup, STAGED at PROCESSING); asked
    // per file, so only for observations of a few hundred files.
    await copiesSection(
      ctx.session,
      [
        ...packages.map((p) => ({ packageId: p.id })),
        ...(files.length <= maxFileCopyLookups ? files.map((f) => ({ fileId: f.id })) : [])
      ],
      locations,
      sites,
      new Map(files.map((f) => [f.id, f.relativePath]))
    ),
    files.length > maxFileCopyLookups
      ? h("p", { class: "muted" }, `Copies of single files are not listed for more than ${maxFileCopyLookups} files.`)
      : null,
    h("h2", { id: "files" }, "Files"),
    table(
      `Files of this observation (${files.length})`,
      [
        { header: "Path", cell: (f) => h("span", { class: "mono" }, f.relativePath) },
        { header: "Module", cell: (f) => nameOf(modules, f.instrumentModuleId) },
        { header: "Size", numeric: true, cell: (f) => F.bytes(f.sizeBytes) },
        { header: "State", cell: (f) => badge(f.state) },
        {
          header: "Package",
          cell: (f) => (f.rawDataPackageId
            ? link(`#/packages/${f.rawDataPackageId}`, h("span", { class: "mono" }, F.short(f.rawDataPackageId)))
            : "-")
        },
        { header: "Checksum", cell: (f) => h("span", { class: "mono", title: f.checksum }, `${String(f.checksum).slice(0, 19)}…`) }
      ],
      files,
      "No files filed yet."
    ),
    h("h2", { id: "history" }, "History"),
    await history("ExecutedObsUnit", id)
  )
}
