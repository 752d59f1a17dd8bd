// @ts-check
/**
 * Pieces several pages share: how an error reads, paging through cursor lists, the lookups
 * that turn ids into names (sites, locations, instruments), and retrying a failed item.
 */
import * as Api from "./api.js"
import { h, replace } from "./dom.js"

/**
 * An error as the user reads it: what went wrong in the API's own words, and for a refused role
 * what to do about it.
 * @param {unknown} e
 * @param {string} [doing] what the UI was doing, e.g. "Loading observations"
 */
export const errorBox = (e, doing) => {
  const error = e instanceof Api.ApiError ? e : new Api.ApiError(0, "Error", e instanceof Error ? e.message : String(e), undefined)
  const title = error.status === 0
    ? "The server could not be reached"
    : error.status === 403
    ? "Not allowed"
    : error.status === 404
    ? "Not found"
    : `${error.tag} (${error.status})`
  return h("div", { class: "alert", role: "alert" }, h("strong", null, doing === undefined ? title : `${doing}: ${title}`), error.message)
}

/**
 * Runs an action from a button: disables it meanwhile and shows the outcome (or the API's error)
 * in `status`.
 * @param {HTMLButtonElement} button
 * @param {HTMLElement} status
 * @param {() => Promise<string>} action resolves to the sentence to show on success
 */
export const act = async (button, status, action) => {
  button.disabled = true
  // Pages that refresh themselves leave a table alone while one of its actions is answered.
  button.setAttribute("aria-busy", "true")
  try {
    const done = await action()
    replace(status, h("div", { class: "notice", role: "status" }, done))
    return true
  } catch (e) {
    replace(status, errorBox(e))
    button.disabled = false
    return false
  } finally {
    button.removeAttribute("aria-busy")
  }
}

/**
 * Previous / next links of a cursor list. The cursors of earlier pages travel in the address
 * (`back`), so the browser's back button and a reload both keep the position.
 * @param {string} route the page's route without query, e.g. `/observations`
 * @param {URLSearchParams} query the current query (filters, `cursor`, `back`)
 * @param {string | null} nextCursor
 */
export const pager = (route, query, nextCursor) => {
  const back = (query.get("back") ?? "").split(",").filter((c) => c !== "")
  const cursor = query.get("cursor")
  /** @param {Record<string, string | null>} changes */
  const to = (changes) => {
    const q = new URLSearchParams(query)
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === "") q.delete(k)
      else q.set(k, v)
    }
    const s = q.toString()
    return `#${route}${s === "" ? "" : `?${s}`}`
  }
  const previous = back.length > 0 || cursor !== null
    ? h(
      "a",
      { href: to({ cursor: back.at(-1) === "-" ? null : back.at(-1) ?? null, back: back.slice(0, -1).join(",") }), rel: "prev" },
      "← Previous"
    )
    : h("span", { class: "muted" }, "← Previous")
  const next = nextCursor !== null
    ? h("a", { href: to({ cursor: nextCursor, back: [...back, cursor ?? "-"].join(",") }), rel: "next" }, "Next →")
    : h("span", { class: "muted" }, "Next →")
  return h("nav", { class: "pager", "aria-label": "Pages" }, previous, next)
}

/** @type {Promise<{ sites: any[], locations: any[], instruments: any[], obsUnits: any[] }> | null} */
let cached = null

/**
 * Sites, locations, instruments and planned observations of this session, loaded once: they
 * change rarely, and every page needs their names. `refresh` reloads them (after a change).
 * @param {boolean} [refresh]
 */
export const lookups = (refresh = false) => {
  if (cached === null || refresh) {
    cached = Promise.all([Api.get("/sites"), Api.get("/locations"), Api.get("/instruments"), Api.get("/obs-units")])
      .then(([sites, locations, instruments, obsUnits]) => ({ sites, locations, instruments, obsUnits }))
    cached.catch(() => (cached = null))
  }
  return cached
}

/** Forgets the lookups (another user signs in and may see other things). */
export const forgetLookups = () => {
  cached = null
}

/**
 * A name for an id from a list of rows, or the id's first characters.
 * @param {any[]} rows
 * @param {string | null | undefined} id
 * @param {string} [field]
 */
export const nameOf = (rows, id, field = "name") => {
  if (id === null || id === undefined) return "-"
  const row = rows.find((r) => r.id === id)
  return row === undefined ? String(id).slice(0, 8) : String(row[field])
}

/**
 * A Retry button for a failed item, for operators and admins only (the API refuses others with
 * a 403 anyway; the button is not shown to them).
 * @param {import("./main.js").Session} session
 * @param {"RawDataPackage" | "DataTransferPackage" | "DataTransfer" | "StagingRequest"} entity
 * @param {string} id
 * @param {() => void} [after] called once the retry was accepted
 * @param {HTMLElement} [outcome] where to say what happened (beside the button when absent)
 */
export const retryButton = (session, entity, id, after, outcome) => {
  if (session.role !== "operator" && session.role !== "admin") return null
  const status = outcome ?? h("span", { "aria-live": "polite" })
  const button = /** @type {HTMLButtonElement} */ (h("button", {
    type: "button",
    class: "secondary",
    "data-retry": id,
    "aria-label": `Retry ${entity} ${id}`,
    onclick: () =>
      void act(button, status, async () => {
        const r = await Api.post("/retries", { entity, id, reason: `retried from the web UI by ${session.account}` })
        if (after !== undefined) setTimeout(after, 1500)
        return `Retried: ${r.from} → ${r.to}${r.newAttemptId ? ` (new attempt ${String(r.newAttemptId).slice(0, 8)})` : ""}`
      })
  }, "Retry"))
  return h("span", { class: "actions" }, button, outcome === undefined ? status : null)
}
