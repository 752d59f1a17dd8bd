// @ts-check
/**
 * Integrity at rest (`GET /integrity`): per location the copies audited within the audit cycle,
 * the last audit and how far behind audits are, copies found corrupt or missing, dark objects
 * (in storage, known to no copy), repairs and the last inventory pass; then the archived
 * packages with fewer good archive copies than the policy requires. Scientists and instrument
 * accounts see the totals only. What each figure means: docs/integrity.md.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { errorBox } from "../view.js"

/**
 * An audit lag in seconds, in days once it is a day or more: audit cycles are counted in days.
 * @param {number | null} seconds
 */
const age = (seconds) =>
  seconds === null ? "-" : seconds >= 86400 ? `${(seconds / 86400).toFixed(1)} d` : F.duration(Math.round(seconds * 1000))

/**
 * The audit lag of a location: "never" first while some live copy was never verified.
 * @param {any} l
 */
const lag = (l) =>
  l.unverifiedCopies > 0
    ? h(
      "span",
      { title: `${l.unverifiedCopies} PRESENT or STAGED copies were never verified` },
      badge("never"),
      ` ${F.count(l.unverifiedCopies)} unverified${l.auditLagSeconds === null ? "" : `, else ${age(l.auditLagSeconds)}`}`
    )
    : age(l.auditLagSeconds)

/**
 * A count that is bad when it is not zero.
 * @param {number} n
 */
const alarm = (n) => n === 0 ? "0" : h("strong", { class: "badge bad" }, F.count(n))

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const body = h("div")
  replace(ctx.main, h("h1", null, "Integrity"), body)
  const load = async () => {
    const r = await Api.get("/integrity", { belowTargetLimit: 100 })
    if (!ctx.current()) return
    const t = r.totals
    const sections = [
      h(
        "p",
        { class: "refresh" },
        `Snapshot of ${F.time(r.at)}; refreshed every 10 seconds. Audit cycle ${r.auditCycleDays} days; ${r.copyTarget} good archive ${
          r.copyTarget === 1 ? "copy" : "copies"
        } required per package.`
      ),
      facts([
        ["Copies", F.count(t.copies)],
        ["Audited within the cycle", F.count(t.audited)],
        ["Never verified", F.count(t.unverifiedCopies)],
        ["Corrupt", alarm(t.corrupt)],
        ["Missing", alarm(t.missing)],
        ["Dark objects", alarm(t.dark)],
        ["Repaired", F.count(t.repaired)],
        ["Packages below target", alarm(t.packagesBelowTarget)]
      ])
    ]
    if (r.scope === "totals") {
      sections.push(
        h("p", { class: "muted" }, "Your account sees the totals only: locations and packages are shown to operators and admins.")
      )
      replace(body, ...sections)
      return
    }
    sections.push(table(
      "Integrity per location",
      [
        { header: "Site", cell: (/** @type {any} */ l) => l.siteShortName },
        { header: "Location", cell: (/** @type {any} */ l) => h("strong", { "data-location": l.name }, l.name) },
        { header: "Type", cell: (/** @type {any} */ l) => `${l.type} (${l.technology})` },
        { header: "Copies", numeric: true, cell: (/** @type {any} */ l) => F.count(l.copies) },
        { header: "Audited", numeric: true, cell: (/** @type {any} */ l) => F.count(l.audited) },
        { header: "Last audit", cell: (/** @type {any} */ l) => F.time(l.lastAuditAt) },
        { header: "Audit lag", cell: lag },
        { header: "Corrupt", numeric: true, cell: (/** @type {any} */ l) => alarm(l.corrupt) },
        { header: "Missing", numeric: true, cell: (/** @type {any} */ l) => alarm(l.missing) },
        { header: "Dark", numeric: true, cell: (/** @type {any} */ l) => alarm(l.dark) },
        { header: "Repaired", numeric: true, cell: (/** @type {any} */ l) => F.count(l.repaired) },
        { header: "Last inventory", cell: (/** @type {any} */ l) => F.time(l.lastInventoryAt) }
      ],
      r.locations,
      "No locations."
    ))
    const below = r.packagesBelowTarget
    if (below.total > below.items.length) {
      sections.push(h("p", null, `Showing ${below.items.length} of ${F.count(below.total)} packages below target, by id.`))
    }
    sections.push(
      table(
        "Packages below their copy target",
        [
          {
            header: "Package",
            cell: (/** @type {any} */ p) => link(`#/packages/${p.id}`, h("span", { class: "mono", title: p.id }, F.short(p.id)))
          },
          { header: "Good copies", numeric: true, cell: (/** @type {any} */ p) => `${p.goodCopies} of ${p.target}` },
          {
            header: "Bad copies",
            cell: (/** @type {any} */ p) =>
              p.badCopies.length === 0
                ? h("span", { class: "muted" }, "none left: copies are gone altogether")
                : p.badCopies.map((/** @type {any} */ c) =>
                  h(
                    "span",
                    { class: "copy", title: c.copyId },
                    `${c.location} `,
                    badge(c.status === "PRESENT" ? (c.verified ? "other bytes" : "never verified") : c.status),
                    " "
                  )
                )
          }
        ],
        below.items,
        "Every archived package has its good archive copies."
      )
    )
    replace(body, ...sections)
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading the integrity figures"))
    return
  }
  ctx.every(10_000, load)
}
