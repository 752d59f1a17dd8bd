// @ts-check
/**
 * One data location: what it is, where, what it allows now, and its history from the event log:
 * when the configuration created or changed it and every availability switch, who made it and
 * why. Operators and admins (the log of locations is theirs to read).
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace } from "../dom.js"
import * as F from "../format.js"
import { errorBox, lookups, nameOf } from "../view.js"
import { history } from "./packages.js"

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  try {
    const [l, { sites }] = await Promise.all([Api.get(`/locations/${encodeURIComponent(id)}`), lookups()])
    const events = await history("DataLocation", id)
    if (!ctx.current()) return
    const on = (/** @type {boolean} */ b) => badge(b ? "on" : "off")
    replace(
      ctx.main,
      h("h1", null, "Location ", h("span", { class: "mono" }, l.name)),
      h(
        "section",
        { class: "card" },
        facts([
          ["Site", link("#/sites", nameOf(sites, l.siteId))],
          ["Type", l.type],
          ["Storage", l.technology],
          ["Priority", String(l.priority)],
          ["Capacity", l.capacityBytes === null ? "not set" : F.bytes(l.capacityBytes)],
          ["Reads", on(l.readable)],
          ["Writes", on(l.writable)],
          ["Deletions", on(l.deletable)],
          ["Updated", F.time(l.updatedAt)]
        ])
      ),
      h("h2", { id: "history" }, "History"),
      events
    )
  } catch (e) {
    replace(ctx.main, h("h1", null, "Location"), errorBox(e, "Loading the location"))
  }
}
