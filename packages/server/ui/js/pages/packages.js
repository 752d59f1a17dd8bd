// @ts-check
/**
 * RawDataPackages: the list by journey (WAITING, TRANSFERRING, ARCHIVED, FAILED), and one package
 * with its files, every copy of it, the bundles that carried it, its transfer attempts and its
 * history of state changes.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox, lookups, nameOf, pager, retryButton } from "../view.js"

const journeys = ["WAITING", "TRANSFERRING", "ARCHIVED", "FAILED"]

/**
 * Where every copy of some packages or bundles is: location, site, status, verified. Copies are
 * an operator's view in the API; other roles get a sentence instead of a refusal.
 * @param {import("../main.js").Session} session
 * @param {Array<{ packageId?: string, bundleId?: string, fileId?: string }>} subjects
 * @param {any[]} locations
 * @param {any[]} sites
 * @param {Map<string, string>} [filePaths] file id → relative path, to name file copies
 */
export const copiesSection = async (session, subjects, locations, sites, filePaths = new Map()) => {
  if (session.role !== "operator" && session.role !== "admin") {
    return h("p", { class: "muted" }, "Copy locations are shown to operators and admins.")
  }
  try {
    /** @type {any[][]} */
    const lists = []
    // Eight requests at a time: an observation's page may ask for a few hundred files' copies.
    for (let i = 0; i < subjects.length; i += 8) {
      lists.push(...(await Promise.all(subjects.slice(i, i + 8).map((s) => Api.all("/copies", s, 1000)))))
    }
    // DELETED copies are history (cleanup removed them once the archive held the data): counted, not listed.
    const copies = lists.flat().filter((c) => c.status !== "DELETED")
    const deleted = lists.flat().length - copies.length
    const site = (/** @type {string} */ locationId) => nameOf(sites, locations.find((l) => l.id === locationId)?.siteId)
    return h(
      "div",
      null,
      table(
        "Physical copies",
        [
          {
            header: "Of",
            cell: (c) =>
              c.rawDataPackageId ?
                link(`#/packages/${c.rawDataPackageId}`, h("span", { class: "mono" }, `package ${F.short(c.rawDataPackageId)}`))
                : c.dataTransferPackageId ?
                link(`#/bundles/${c.dataTransferPackageId}`, h("span", { class: "mono" }, `bundle ${F.short(c.dataTransferPackageId)}`))
                : h(
                  "span",
                  { class: "mono", title: c.rawDataFileId },
                  `file ${filePaths.get(c.rawDataFileId)?.split("/").at(-1) ?? F.short(c.rawDataFileId)}`
                )
          },
          { header: "Location", cell: (c) => nameOf(locations, c.dataLocationId) },
          { header: "Type", cell: (c) => locations.find((l) => l.id === c.dataLocationId)?.type ?? "-" },
          { header: "Site", cell: (c) => site(c.dataLocationId) },
          { header: "Status", cell: (c) => badge(c.status) },
          { header: "Size", numeric: true, cell: (c) => F.bytes(c.sizeBytes) },
          { header: "Verified", cell: (c) => F.time(c.verifiedAt) },
          { header: "Path", cell: (c) => h("span", { class: "mono" }, c.path) }
        ],
        copies,
        deleted > 0 ? "No live copies." : "No copies yet."
      ),
      deleted === 0
        ? null
        : h("p", { class: "muted" }, `${F.count(deleted)} earlier cop${deleted === 1 ? "y" : "ies"} deleted by cleanup once archived.`)
    )
  } catch (e) {
    return errorBox(e, "Loading copies")
  }
}

/**
 * The history of state changes of one thing, from the event log (`GET /events`).
 * @param {string} entity
 * @param {string} id
 */
export const history = async (entity, id) => {
  try {
    const events = await Api.all("/events", { entity, id }, 2000)
    return table(
      "History (event log), oldest first",
      [
        { header: "When", cell: (e) => F.time(e.at) },
        // null is the item's creation when it comes first; later (a grant given) it is no state at all
        { header: "From", cell: (e) => (e.fromState === null ? (e === events[0] ? "created" : "-") : badge(e.fromState)) },
        { header: "To", cell: (e) => badge(e.toState) },
        { header: "By", cell: (e) => e.actor },
        { header: "Details", cell: (e) => (Object.keys(e.details ?? {}).length > 0 ? h("code", null, JSON.stringify(e.details)) : "") }
      ],
      events,
      "No recorded changes."
    )
  } catch (e) {
    return errorBox(e, "Loading the history")
  }
}

/** @param {import("../main.js").Context} ctx */
export const list = async (ctx) => {
  const { query } = ctx
  const journey = query.get("journey") ?? ""
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter packages",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const v = /** @type {HTMLSelectElement} */ (document.getElementById("filter-journey")).value
        ctx.go(v === "" ? "#/packages" : `#/packages?journey=${v}`)
      }
    },
    h(
      "label",
      null,
      "Journey",
      h(
        "select",
        { id: "filter-journey", name: "journey" },
        h("option", { value: "" }, "any"),
        journeys.map((j) => h("option", { value: j, selected: j === journey }, j))
      )
    ),
    h("button", { type: "submit" }, "Filter")
  )
  const results = h("div", { "aria-live": "polite" })
  replace(ctx.main, h("h1", null, "Packages"), form, results)
  try {
    const page = await Api.get("/packages", { journey, observationId: query.get("observation"), limit: 25, cursor: query.get("cursor") })
    if (!ctx.current()) return
    replace(
      results,
      table(
        "RawDataPackages, in creation order",
        [
          { header: "Package", cell: (p) => link(`#/packages/${p.id}`, h("span", { class: "mono", title: p.id }, F.short(p.id))) },
          {
            header: "Observation",
            cell: (p) => link(`#/observations/${p.executedObsUnitId}`, h("span", { class: "mono" }, F.short(p.executedObsUnitId)))
          },
          { header: "Journey", cell: (p) => badge(p.journey) },
          { header: "Size", numeric: true, cell: (p) => F.bytes(p.sizeBytes) },
          { header: "Created", cell: (p) => F.time(p.createdAt) },
          { header: "Error", cell: (p) => p.errorMessage ?? "" }
        ],
        page.items,
        "No packages match."
      ),
      pager("/packages", query, page.nextCursor)
    )
  } catch (e) {
    replace(results, errorBox(e, "Loading packages"))
  }
}

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  const [p, { locations, sites }] = await Promise.all([Api.get(`/packages/${encodeURIComponent(id)}`), lookups()])
  const operator = ctx.session.role === "operator" || ctx.session.role === "admin"
  const [files, bundles, own] = await Promise.all([
    Api.all("/files", { packageId: id }, 2000),
    operator ? Api.all("/bundles", { packageId: id }, 200) : Promise.resolve(null),
    operator ? Api.all("/transfers", { packageId: id }, 500) : Promise.resolve(null)
  ])
  // A package usually travels inside bundles: its moves are its own attempts and its bundles'.
  const attempts = bundles === null || own === null
    ? null
    : [...own, ...(await Promise.all(bundles.map((b) => Api.all("/transfers", { bundleId: b.id }, 500)))).flat()]
      .sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)))
  if (!ctx.current()) return
  const sections = [
    h("h1", null, "Package ", h("span", { class: "mono" }, p.id)),
    h(
      "section",
      { class: "card" },
      facts([
        ["Observation", link(`#/observations/${p.executedObsUnitId}`, h("span", { class: "mono" }, p.executedObsUnitId))],
        ["Journey", badge(p.journey)],
        ["State", badge(p.status)],
        ["Size", F.bytes(p.sizeBytes)],
        ["Checksum", h("span", { class: "mono" }, p.checksum ?? "-")],
        ["Path", h("span", { class: "mono" }, p.relativePath)],
        ["Error", p.errorMessage ?? "-"],
        ["Created", F.time(p.createdAt)],
        ["Updated", F.time(p.updatedAt)]
      ]),
      p.status === "failed"
        ? retryButton(ctx.session, "RawDataPackage", p.id, () => void ctx.go(`#/packages/${p.id}?t=${Date.now()}`))
        : null
    ),
    h("h2", null, "Where every copy is"),
    await copiesSection(ctx.session, [{ packageId: id }], locations, sites)
  ]
  if (bundles !== null && attempts !== null) {
    sections.push(
      h("h2", null, "Bundles that carried it"),
      table(
        "Transfer bundles",
        [
          { header: "Bundle", cell: (b) => link(`#/bundles/${b.id}`, h("span", { class: "mono" }, F.short(b.id))) },
          { header: "State", cell: (b) => badge(b.status) },
          { header: "Size", numeric: true, cell: (b) => F.bytes(b.sizeBytes) },
          { header: "Packages", numeric: true, cell: (b) => b.packageIds.length }
        ],
        bundles,
        "Not bundled yet."
      ),
      h("h2", null, "Transfer attempts (its own and its bundles')"),
      attemptsTable(attempts, locations)
    )
  }
  sections.push(
    h("h2", null, "History"),
    await history("RawDataPackage", id),
    h("h2", null, "Files"),
    table(
      `Files in this package (${files.length})`,
      [
        { header: "Path", cell: (f) => h("span", { class: "mono" }, f.relativePath) },
        { header: "Size", numeric: true, cell: (f) => F.bytes(f.sizeBytes) },
        { header: "State", cell: (f) => badge(f.state) }
      ],
      files,
      "No files."
    )
  )
  replace(ctx.main, ...sections)
}

/**
 * Transfer attempts with route ends, bytes, throughput and error.
 * @param {any[]} attempts
 * @param {any[]} locations
 */
export const attemptsTable = (attempts, locations) =>
  table(
    "DataTransfer attempts",
    [
      { header: "Attempt", numeric: true, cell: (t) => h("span", { title: t.id }, `#${t.attempt}`) },
      { header: "From", cell: (t) => nameOf(locations, t.fromLocationId) },
      { header: "To", cell: (t) => nameOf(locations, t.toLocationId) },
      { header: "Adapter", cell: (t) => t.adapter },
      { header: "State", cell: (t) => badge(t.status) },
      { header: "Bytes", numeric: true, cell: (t) => F.bytes(t.bytesTransferred) },
      { header: "Duration", numeric: true, cell: (t) => F.duration(t.durationMs) },
      { header: "Throughput", numeric: true, cell: (t) => F.rate(t.throughputBytesPerSecond) },
      { header: "Started", cell: (t) => F.time(t.startedAt) },
      { header: "Error", cell: (t) => (t.errorMessage ? `${t.errorReason ?? ""} ${t.errorMessage}`.trim() : "") }
    ],
    attempts,
    "No attempts."
  )
