// @ts-check
/**
 * What failed and why, newest first, from the status snapshot; operators and admins retry a
 * failed package, bundle, transfer attempt or staging request from here (`POST /retries`).
 * Files and copies are not retried this way: a corrupt or missing file needs its source fixed,
 * a failed deletion is retried by cleanup itself.
 */
import * as Api from "../api.js"
import { badge, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox, retryButton } from "../view.js"

/** Where each kind of item has a page of its own. */
const pages = /** @type {Record<string, string>} */ ({
  RawDataPackage: "#/packages/",
  DataTransferPackage: "#/bundles/",
  StagingRequest: "#/staging/"
})
const retryable = new Set(["RawDataPackage", "DataTransferPackage", "DataTransfer", "StagingRequest"])

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const body = h("div")
  // Outside the refreshed table, so the outcome of a retry stays on screen.
  const outcome = h("div", { "aria-live": "polite" })
  replace(ctx.main, h("h1", null, "Failures"), outcome, body)
  const load = async () => {
    if (body.querySelector("button[aria-busy]") !== null) return
    const s = await Api.get("/status", { failedLimit: 200 })
    if (!ctx.current()) return
    const totals = Object.entries(s.failedTotals).filter(([, n]) => Number(n) > 0)
    replace(
      body,
      h("p", { class: "refresh" }, `Snapshot of ${F.time(s.at)}; refreshed every 5 seconds.`),
      totals.length === 0
        ? h("p", { class: "notice", role: "status" }, "Nothing has failed.")
        : h("p", null, "Failed in all: ", totals.map(([k, n]) => `${k} ${F.count(Number(n))}`).join(", "), "."),
      table(
        "Failed items, newest first",
        [
          { header: "What", cell: (f) => f.entity },
          {
            header: "Id",
            cell: (f) =>
              pages[f.entity]
                ? link(`${pages[f.entity]}${f.id}`, h("span", { class: "mono", title: f.id }, F.short(f.id)))
                : h("span", { class: "mono", title: f.id }, F.short(f.id))
          },
          { header: "State", cell: (f) => badge(f.state) },
          { header: "Reason", cell: (f) => h("span", { class: "reason" }, f.errorMessage ?? "(no reason recorded)") },
          { header: "Since", cell: (f) => F.time(f.updatedAt) },
          {
            header: "Action",
            cell: (f) => (retryable.has(f.entity) && f.state === "failed"
              ? retryButton(ctx.session, f.entity, f.id, () => void load(), outcome)
              : "")
          }
        ],
        s.failed,
        "Nothing has failed."
      )
    )
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading failures"))
    return
  }
  ctx.every(5000, load)
}
