// @ts-check
/**
 * The pipeline at a glance, refreshed every few seconds: what waits at each lifecycle stage (in
 * the order data flows), packages by journey, and every entity's count per state with the failed
 * ones standing out. One `GET /api/v1/status` snapshot per refresh, so the figures agree.
 */
import * as Api from "../api.js"
import { h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox } from "../view.js"

/** The stages in the order data flows, with what their figure counts. */
const stages = [
  { key: "waitingToPackage", title: "Packaging", what: "files waiting" },
  { key: "waitingToBundle", title: "Bundling", what: "packages waiting" },
  { key: "inTransfer", title: "Transfer", what: "bundles moving or queued" },
  { key: "waitingToArchive", title: "Archiving", what: "packages waiting" },
  { key: "staged", title: "Staged", what: "copies at PROCESSING" },
  { key: "waitingToDelete", title: "Cleanup", what: "copies to delete" }
]

/** Entities of the counts table, and the failed-total key of each. */
const entities = [
  { key: "files", title: "Files", failedKey: "RawDataFile", failed: ["corrupt", "missing"] },
  { key: "packages", title: "Packages", failedKey: "RawDataPackage", failed: ["failed"] },
  { key: "bundles", title: "Bundles", failedKey: "DataTransferPackage", failed: ["failed"] },
  { key: "transfers", title: "Transfer attempts", failedKey: "DataTransfer", failed: ["failed"] },
  { key: "stagingRequests", title: "Staging requests", failedKey: "StagingRequest", failed: ["failed"] },
  { key: "copies", title: "Physical copies", failedKey: "PhysicalCopy", failed: ["DELETION_FAILED", "CORRUPT", "MISSING"] }
]

/**
 * The stage cards: waiting (count and bytes) and, where the counts say it, moving and failed.
 * @param {any} s the status snapshot
 */
const stageCards = (s) => {
  const c = s.counts
  /** @type {Record<string, { moving?: number, failed?: number }>} */
  const extra = {
    waitingToPackage: { moving: c.packages.scheduled + c.packages.pending, failed: c.files.corrupt + c.files.missing },
    inTransfer: { moving: c.transfers.in_progress, failed: c.bundles.failed },
    waitingToArchive: { moving: c.packages.in_progress, failed: c.packages.failed },
    staged: { moving: c.stagingRequests.in_progress + c.stagingRequests.scheduled, failed: c.stagingRequests.failed },
    waitingToDelete: { failed: c.copies.DELETION_FAILED }
  }
  return h(
    "ol",
    { class: "stages", "aria-label": "Lifecycle stages" },
    stages.map((st) => {
      const load = s.stages[st.key]
      const x = extra[st.key] ?? {}
      return h(
        "li",
        { class: `stage${(x.failed ?? 0) > 0 ? " has-failed" : ""}`, "data-stage": st.key },
        h("h3", null, st.title),
        h(
          "dl",
          null,
          h("dt", null, `Waiting (${st.what})`),
          h("dd", { "data-figure": "waiting" }, F.count(load.count)),
          h("dt", null, "Bytes"),
          h("dd", null, F.bytes(load.bytes)),
          x.moving === undefined ? null : [h("dt", null, "Moving"), h("dd", { "data-figure": "moving" }, F.count(x.moving))],
          x.failed === undefined ? null : [h("dt", null, "Failed"), h("dd", { "data-figure": "failed" }, F.count(x.failed))]
        )
      )
    })
  )
}

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const body = h("div", { "aria-live": "polite", "aria-atomic": "false" })
  const stamp = h("p", { class: "refresh" })
  replace(ctx.main, h("h1", null, "Pipeline"), stamp, body)
  const operator = ctx.session.role === "operator" || ctx.session.role === "admin"
  const load = async () => {
    try {
      const s = await Api.get("/status", { failedLimit: 0 })
      if (!ctx.current()) return
      replace(stamp, `Snapshot of ${F.time(s.at)}; refreshed every 3 seconds.`)
      const journeys = s.counts.packageJourneys
      const failedTotal = Object.values(s.failedTotals).reduce((a, b) => a + Number(b), 0)
      replace(
        body,
        h(
          "section",
          { class: "grid", "aria-label": "Packages by journey" },
          ["WAITING", "TRANSFERRING", "ARCHIVED", "FAILED"].map((j) =>
            h(
              "div",
              { class: "card stat", "data-journey": j },
              h("span", { class: "value" }, F.count(journeys[j])),
              h("span", { class: "label" }, `packages ${j}`)
            )
          )
        ),
        h("h2", null, "Stages"),
        stageCards(s),
        h("h2", null, "Counts by state"),
        ...entities.map((e) => {
          const counts = s.counts[e.key]
          const states = Object.keys(counts)
          return table(
            e.title,
            states.map((st) => ({
              header: st,
              numeric: true,
              cell: () => (e.failed.includes(st) && counts[st] > 0
                ? h("strong", { class: "badge bad" }, F.count(counts[st]))
                : F.count(counts[st]))
            })),
            [null]
          )
        }),
        operator && failedTotal > 0
          ? h("p", null, link("#/failures", `${F.count(failedTotal)} failed item(s): see why and retry →`))
          : null
      )
    } catch (e) {
      if (ctx.current()) replace(body, errorBox(e, "Loading the status"))
    }
  }
  await load()
  ctx.every(3000, load)
}
