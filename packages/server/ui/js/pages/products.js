// @ts-check
/**
 * DataProducts, the processed results filed back into the archive: the list (by calibration
 * level, pipeline, whether ARCHIVED, and the program or observation the address names), and one
 * product with its provenance (its inputs as filed and every observation it derives from), its
 * files and the packages that carry it to the archive.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox, pager } from "../view.js"

/**
 * A link to an id, shortened, with the whole id on hover.
 * @param {string} route
 * @param {string} id
 */
const idLink = (route, id) => link(`#/${route}/${id}`, h("span", { class: "mono", title: id }, F.short(id)))

/** @param {import("../main.js").Context} ctx */
export const list = async (ctx) => {
  const { query } = ctx
  const value = (/** @type {string} */ id) => /** @type {HTMLInputElement | HTMLSelectElement} */ (document.getElementById(id)).value.trim()
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter products",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        // the program and observation the address names stay; the page starts again at its first
        const q = new URLSearchParams()
        for (const k of ["program", "observation"]) if (query.get(k)) q.set(k, /** @type {string} */ (query.get(k)))
        for (const [k, id] of [["calibLevel", "filter-level"], ["archived", "filter-archived"], ["pipeline", "filter-pipeline"]]) {
          if (value(id) !== "") q.set(k, value(id))
        }
        const s = q.toString()
        ctx.go(s === "" ? "#/products" : `#/products?${s}`)
      }
    },
    h(
      "label",
      null,
      "Calibration level",
      h(
        "select",
        { id: "filter-level", name: "calibLevel" },
        h("option", { value: "" }, "any"),
        h("option", { value: "2", selected: query.get("calibLevel") === "2" }, "2: calibrated"),
        h("option", { value: "3", selected: query.get("calibLevel") === "3" }, "3: combined")
      )
    ),
    h(
      "label",
      null,
      "Archived",
      h(
        "select",
        { id: "filter-archived", name: "archived" },
        h("option", { value: "" }, "any"),
        h("option", { value: "true", selected: query.get("archived") === "true" }, "archived"),
        h("option", { value: "false", selected: query.get("archived") === "false" }, "not yet")
      )
    ),
    h(
      "label",
      null,
      "Pipeline",
      h("input", { id: "filter-pipeline", name: "pipeline", value: query.get("pipeline") ?? "", placeholder: "exact name" })
    ),
    h("button", { type: "submit" }, "Filter")
  )
  const scope = [
    query.get("program") ? h("span", null, "of program ", h("span", { class: "mono" }, query.get("program"))) : null,
    query.get("observation")
      ? h("span", null, " derived from observation ", idLink("observations", /** @type {string} */ (query.get("observation"))))
      : null
  ].filter((x) => x !== null)
  const results = h("div", { "aria-live": "polite" })
  replace(
    ctx.main,
    h("h1", null, "Data products"),
    scope.length === 0 ? null : h("p", { id: "products-scope" }, "Products ", ...scope, " ", link("#/products", "(all)")),
    form,
    results
  )
  try {
    const page = await Api.get("/data-products", {
      programId: query.get("program"),
      observationId: query.get("observation"),
      calibLevel: query.get("calibLevel"),
      archived: query.get("archived"),
      pipeline: query.get("pipeline"),
      limit: 25,
      cursor: query.get("cursor")
    })
    if (!ctx.current()) return
    replace(
      results,
      table(
        "DataProducts, in filing order",
        [
          { header: "Product", cell: (p) => link(`#/products/${p.id}`, p.name) },
          { header: "Pipeline", cell: (p) => `${p.pipeline} ${p.pipelineVersion}` },
          { header: "Level", numeric: true, cell: (p) => p.calibLevel },
          { header: "Type", cell: (p) => p.dataproductType },
          { header: "Journey", cell: (p) => badge(p.journey) },
          { header: "Filed", cell: (p) => F.time(p.createdAt) },
          { header: "By", cell: (p) => p.filedBy }
        ],
        page.items,
        "No products match."
      ),
      pager("/products", query, page.nextCursor)
    )
  } catch (e) {
    replace(results, errorBox(e, "Loading products"))
  }
}

/**
 * One input as filed: an observation, a package or another product, linked to its page.
 * @param {{ observationId?: string, packageId?: string, productId?: string }} input
 */
const inputRow = (input) =>
  input.observationId !== undefined ?
    { kind: "observation", to: idLink("observations", input.observationId) }
    : input.packageId !== undefined ?
    { kind: "package", to: idLink("packages", input.packageId) }
    : { kind: "product", to: idLink("products", /** @type {string} */ (input.productId)) }

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  const p = await Api.get(`/data-products/${encodeURIComponent(id)}`)
  if (!ctx.current()) return
  const parameters = Object.keys(p.parameters ?? {}).length === 0 ? "-" : h("code", null, JSON.stringify(p.parameters))
  replace(
    ctx.main,
    h("h1", null, "Product ", p.name),
    h(
      "section",
      { class: "card" },
      facts([
        ["Id", h("span", { class: "mono" }, p.id)],
        ["Journey", badge(p.journey)],
        ["Pipeline", `${p.pipeline} ${p.pipelineVersion}`],
        ["Parameters", parameters],
        ["Calibration level", String(p.calibLevel)],
        ["Type", p.dataproductType],
        ["Program", link(`#/products?program=${p.programId}`, h("span", { class: "mono" }, p.programId))],
        ["Written at", p.location],
        ["Filed by", p.filedBy],
        ["Filed", F.time(p.createdAt)],
        ["ObsCore / DataLink id", h("span", { class: "mono" }, p.publisherDid)]
      ])
    ),
    h("h2", null, "Provenance"),
    table(
      "Inputs, in the pipeline's order",
      [
        { header: "Kind", cell: (r) => r.kind },
        { header: "Input", cell: (r) => r.to }
      ],
      p.inputs.map(inputRow),
      "No inputs."
    ),
    table(
      "Observations it derives from (directly or through its input products)",
      [
        { header: "Observation", cell: (o) => idLink("observations", o) },
        { header: "Its products", cell: (o) => link(`#/products?observation=${o}`, "products of this observation") }
      ],
      p.observationIds,
      "None."
    ),
    h("h2", null, "Packages"),
    table(
      `Packages carrying it to the archive (${p.packages.length})`,
      [
        { header: "Package", cell: (k) => idLink("packages", k.id) },
        { header: "State", cell: (k) => badge(k.status) },
        { header: "Journey", cell: (k) => badge(k.journey) }
      ],
      p.packages,
      "Not packaged yet."
    ),
    h("h2", null, "Files"),
    table(
      `Files of this product (${p.files.length})`,
      [
        { header: "Path", cell: (f) => h("span", { class: "mono", title: f.id }, f.relativePath) },
        { header: "Size", numeric: true, cell: (f) => F.bytes(f.sizeBytes) },
        { header: "State", cell: (f) => badge(f.state) },
        { header: "Package", cell: (f) => (f.packageId === null ? "-" : idLink("packages", f.packageId)) }
      ],
      p.files,
      "No files."
    )
  )
}
