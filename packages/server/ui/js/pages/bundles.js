// @ts-check
/**
 * Transfer bundles (DataTransferPackages) and their history of attempts: what an operator looks
 * at when a link between sites is slow or failing.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { attemptsTable, copiesSection, history } from "./packages.js"
import { errorBox, lookups, pager, retryButton } from "../view.js"

const statuses = ["pending", "scheduled", "in_progress", "completed", "failed"]

/** @param {import("../main.js").Context} ctx */
export const list = async (ctx) => {
  const { query } = ctx
  const status = query.get("status") ?? ""
  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter bundles",
      onsubmit: (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const v = /** @type {HTMLSelectElement} */ (document.getElementById("filter-status")).value
        ctx.go(v === "" ? "#/bundles" : `#/bundles?status=${v}`)
      }
    },
    h(
      "label",
      null,
      "State",
      h(
        "select",
        { id: "filter-status", name: "status" },
        h("option", { value: "" }, "any"),
        statuses.map((s) => h("option", { value: s, selected: s === status }, s))
      )
    ),
    h("button", { type: "submit" }, "Filter")
  )
  const results = h("div", { "aria-live": "polite" })
  replace(ctx.main, h("h1", null, "Transfer bundles"), form, results)
  try {
    const page = await Api.get("/bundles", { status, limit: 25, cursor: query.get("cursor") })
    if (!ctx.current()) return
    replace(
      results,
      table(
        "DataTransferPackages, in creation order",
        [
          { header: "Bundle", cell: (b) => link(`#/bundles/${b.id}`, h("span", { class: "mono", title: b.id }, F.short(b.id))) },
          { header: "State", cell: (b) => badge(b.status) },
          { header: "Packages", numeric: true, cell: (b) => b.packageIds.length },
          { header: "Size", numeric: true, cell: (b) => F.bytes(b.sizeBytes) },
          { header: "Created", cell: (b) => F.time(b.createdAt) },
          { header: "Error", cell: (b) => b.errorMessage ?? "" }
        ],
        page.items,
        "No bundles match."
      ),
      pager("/bundles", query, page.nextCursor)
    )
  } catch (e) {
    replace(results, errorBox(e, "Loading bundles"))
  }
}

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  const [b, { locations, sites }, attempts] = await Promise.all([
    Api.get(`/bundles/${encodeURIComponent(id)}`),
    lookups(),
    Api.all("/transfers", { bundleId: id }, 500)
  ])
  if (!ctx.current()) return
  const reload = () => void ctx.go(`#/bundles/${id}?t=${Date.now()}`)
  replace(
    ctx.main,
    h("h1", null, "Bundle ", h("span", { class: "mono" }, b.id)),
    h(
      "section",
      { class: "card" },
      facts([
        ["State", badge(b.status)],
        ["Size", F.bytes(b.sizeBytes)],
        ["Checksum", h("span", { class: "mono" }, b.checksum ?? "-")],
        ["Path", h("span", { class: "mono" }, b.relativePath)],
        ["Error", b.errorMessage ?? "-"],
        ["Created", F.time(b.createdAt)],
        ["Updated", F.time(b.updatedAt)]
      ]),
      b.status === "failed" ? retryButton(ctx.session, "DataTransferPackage", b.id, reload) : null
    ),
    h("h2", null, "Attempts"),
    attemptsTable(attempts, locations),
    attempts.filter((t) => t.status === "failed").length > 0
      ? h(
        "p",
        null,
        "Retry the last failed attempt: ",
        retryButton(ctx.session, "DataTransfer", attempts.filter((t) => t.status === "failed").at(-1).id, reload)
      )
      : null,
    h("h2", null, "Packages in the bundle"),
    h("ul", null, b.packageIds.map((/** @type {string} */ p) => h("li", null, link(`#/packages/${p}`, h("span", { class: "mono" }, p))))),
    h("h2", null, "Where every copy is"),
    await copiesSection(ctx.session, [{ bundleId: id }], locations, sites),
    h("h2", null, "History"),
    await history("DataTransferPackage", id)
  )
}
