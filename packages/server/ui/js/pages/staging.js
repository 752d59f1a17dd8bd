// @ts-check
/**
 * Staging: a scientist asks for observations (or packages) to be made available at a PROCESSING
 * location, watches the request until it is completed and releases it when processing is done;
 * operators see every request, can retry a failed one and release any.
 */
import * as Api from "../api.js"
import { badge, facts, h, link, replace, table } from "../dom.js"
import * as F from "../format.js"
import { history } from "./packages.js"
import { act, errorBox, lookups, nameOf, pager, retryButton } from "../view.js"

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** @param {import("../main.js").Context} ctx */
export const list = async (ctx) => {
  const { query } = ctx
  const { locations } = await lookups()
  const processing = locations.filter((l) => l.type === "PROCESSING")
  const results = h("div", { "aria-live": "polite" })
  const sections = [h("h1", null, "Staging requests")]
  if (ctx.session.role === "scientist" || ctx.session.role === "admin") {
    sections.push(requestForm(ctx, processing, query.get("observation") ?? ""))
  }
  sections.push(h("h2", null, ctx.session.role === "scientist" ? "Your requests" : "Requests"), results)
  replace(ctx.main, ...sections)
  const load = async () => {
    try {
      const page = await Api.get("/staging-requests", { limit: 25, cursor: query.get("cursor") })
      if (!ctx.current()) return
      replace(
        results,
        table(
          "Staging requests, in creation order",
          [
            { header: "Request", cell: (r) => link(`#/staging/${r.id}`, h("span", { class: "mono", title: r.id }, F.short(r.id))) },
            { header: "Location", cell: (r) => nameOf(locations, r.dataLocationId) },
            { header: "Items", numeric: true, cell: (r) => r.items.length },
            { header: "State", cell: (r) => (r.releasedAt ? h("span", null, badge(r.status), " released") : badge(r.status)) },
            { header: "Requested", cell: (r) => F.time(r.createdAt) },
            { header: "Expires", cell: (r) => F.time(r.expiresAt) },
            { header: "Error", cell: (r) => r.errorMessage ?? "" }
          ],
          page.items,
          "No staging requests yet."
        ),
        pager("/staging", query, page.nextCursor)
      )
    } catch (e) {
      replace(results, errorBox(e, "Loading staging requests"))
    }
  }
  await load()
  ctx.every(3000, load)
}

/**
 * The form a scientist requests staging with: where, which observations (one id per line),
 * and until when. Ids are checked here for a quick answer; the API checks everything again.
 * @param {import("../main.js").Context} ctx
 * @param {any[]} processing
 * @param {string} observation an observation id to start with
 */
const requestForm = (ctx, processing, observation) => {
  const status = h("div", { "aria-live": "polite" })
  const ids = /** @type {HTMLTextAreaElement} */ (h("textarea", {
    id: "stage-observations",
    name: "observations",
    rows: 3,
    required: true,
    placeholder: "one observation id per line"
  }))
  ids.value = observation
  const where = /** @type {HTMLSelectElement} */ (h(
    "select",
    { id: "stage-location", name: "location", required: true },
    processing.map((l) => h("option", { value: l.name }, l.name))
  ))
  const expires = /** @type {HTMLInputElement} */ (h("input", { id: "stage-expires", type: "datetime-local", name: "expires" }))
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit" }, "Request staging"))
  const form = h(
    "form",
    {
      "aria-labelledby": "stage-title",
      onsubmit: async (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const list = ids.value.split(/[\s,]+/).filter((s) => s !== "")
        const bad = list.filter((s) => !uuid.test(s))
        if (list.length === 0 || bad.length > 0) {
          replace(
            status,
            h(
              "div",
              { class: "alert", role: "alert" },
              list.length === 0 ? "Name at least one observation." : `Not an observation id: ${bad.join(", ")}`
            )
          )
          return
        }
        submit.disabled = true
        try {
          const created = await Api.post("/staging-requests", {
            location: where.value,
            observationIds: list,
            ...(expires.value === "" ? {} : { expiresAt: new Date(`${expires.value}:00Z`).toISOString() })
          })
          ctx.go(`#/staging/${created.id}`)
        } catch (e) {
          replace(status, errorBox(e, "The request was refused"))
          submit.disabled = false
        }
      }
    },
    h("label", { for: "stage-observations" }, "Observations to stage"),
    ids,
    h(
      "div",
      { class: "filters" },
      h("label", null, "PROCESSING location", where),
      h("label", null, "Keep until (UTC, optional)", expires),
      submit
    ),
    status
  )
  return h(
    "section",
    { class: "card" },
    h("h2", { id: "stage-title" }, "Request staging"),
    processing.length === 0 ? h("p", { class: "muted" }, "There is no PROCESSING location to stage to.") : form
  )
}

/** @param {import("../main.js").Context} ctx */
export const one = async (ctx) => {
  const id = ctx.params[0]
  const { locations } = await lookups()
  const body = h("div", { "aria-live": "polite" })
  const outcome = h("div", { "aria-live": "polite" })
  // Outside the refreshed body, so a refresh never closes the confirmation under the pointer.
  const releasing = h("div", { id: "staging-release" })
  replace(ctx.main, h("h1", null, "Staging request ", h("span", { class: "mono" }, id)), outcome, releasing, body)
  let confirming = false
  /** @param {any} r */
  const offerRelease = (r) => {
    if (confirming) return
    const mayRelease = r.releasedAt == null && (r.status === "completed" || r.status === "failed") &&
      (r.accountId === ctx.session.accountId || ctx.session.role === "operator" || ctx.session.role === "admin")
    if (!mayRelease) {
      replace(releasing)
      return
    }
    if (releasing.childElementCount > 0) return
    replace(
      releasing,
      h("button", {
        type: "button",
        class: "secondary",
        onclick: () => {
          confirming = true
          const yes = /** @type {HTMLButtonElement} */ (h("button", {
            type: "button",
            onclick: () =>
              void act(yes, outcome, async () => {
                const released = await Api.post(`/staging-requests/${encodeURIComponent(id)}/release`, undefined)
                confirming = false
                replace(releasing)
                await load()
                return `Released at ${F.time(released.releasedAt)}: the request no longer keeps its staged files.`
              }).then((ok) => {
                if (ok) return
                // Refused (the request moved on while the question was open): the refusal stays
                // shown, the question closes and the page shows the request as it is now.
                confirming = false
                replace(releasing)
                load().catch(() => undefined)
              })
          }, "Yes, release"))
          replace(
            releasing,
            h(
              "div",
              { class: "card", role: "alertdialog", "aria-labelledby": "release-question" },
              h(
                "p",
                { id: "release-question" },
                `Release this request? Its staged files at ${nameOf(locations, r.dataLocationId)} are no longer kept for it: `,
                "the site's cleanup removes its folder, and files no other request holds. This cannot be undone; stage again if you need them."
              ),
              h(
                "span",
                { class: "actions" },
                yes,
                h("button", {
                  type: "button",
                  class: "secondary",
                  onclick: () => {
                    confirming = false
                    replace(releasing)
                    offerRelease(r)
                  }
                }, "Cancel")
              )
            )
          )
          yes.focus()
        }
      }, "Release")
    )
  }
  const load = async () => {
    const r = await Api.get(`/staging-requests/${encodeURIComponent(id)}`)
    if (!ctx.current()) return
    offerRelease(r)
    const done = r.status === "completed" || r.status === "failed"
    replace(
      body,
      h(
        "section",
        { class: "card" },
        facts([
          ["State", h("span", { id: "staging-status" }, badge(r.status))],
          ["Location", nameOf(locations, r.dataLocationId)],
          ["Requested", F.time(r.createdAt)],
          ["Updated", F.time(r.updatedAt)],
          ["Expires", F.time(r.expiresAt)],
          ["Released", h("span", { id: "staging-released" }, r.releasedAt ? F.time(r.releasedAt) : "not yet")],
          ["Error", r.errorMessage ?? "-"]
        ]),
        done ? null : h("p", { class: "refresh" }, "Refreshing every 2 seconds until it is done."),
        r.status === "failed" ? retryButton(ctx.session, "StagingRequest", r.id, () => void load(), outcome) : null
      ),
      h("h2", null, "What it asks for"),
      table("Items", [
        {
          header: "Observation",
          cell: (
            i
          ) => (i.executedObsUnitId
            ? link(`#/observations/${i.executedObsUnitId}`, h("span", { class: "mono" }, i.executedObsUnitId))
            : "-")
        },
        {
          header: "Package",
          cell: (
            i
          ) => (i.rawDataPackageId ? link(`#/packages/${i.rawDataPackageId}`, h("span", { class: "mono" }, i.rawDataPackageId)) : "-")
        }
      ], r.items),
      h("h2", null, "History"),
      await history("StagingRequest", id)
    )
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading the request"))
    return
  }
  ctx.every(2000, load)
}
