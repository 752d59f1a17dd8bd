// @ts-check
/**
 * Who can do what, for admins: every account with its role, state, grants and usable tokens
 * (`GET /access`). An admin disables or enables an account (`PATCH /accounts/{name}`) and takes a
 * grant back (`DELETE /grants`) from here; each change is logged with the admin's name, and an
 * account's History shows that log (created, grants given and taken back, disabled, enabled).
 */
import * as Api from "../api.js"
import { badge, h, replace, table } from "../dom.js"
import * as F from "../format.js"
import { act, errorBox } from "../view.js"
import { history } from "./packages.js"

/** @param {import("../main.js").Context} ctx */
export const render = async (ctx) => {
  const body = h("div")
  // Outside the refreshed table, so an action's outcome stays on screen.
  const outcome = h("div", { "aria-live": "polite" })
  // An account's history, below the refreshed table so a refresh does not close it.
  const shown = h("section", { "aria-live": "polite" })
  replace(
    ctx.main,
    h("h1", null, "Access"),
    h(
      "p",
      null,
      "Who can do what. Disabling an account refuses all its tokens from their next request; taking a grant back applies at once (at telescope relays within their sync interval)."
    ),
    outcome,
    body,
    shown
  )

  /** @param {string} name an account's name */
  const showHistory = async (name) => {
    try {
      const account = (await Api.get("/accounts")).find((/** @type {any} */ x) => x.name === name)
      if (account === undefined) return replace(shown, h("p", { class: "muted" }, `${name} is gone.`))
      replace(shown, h("h2", { id: "account-history" }, `History of ${name}`), await history("Account", account.id))
    } catch (e) {
      replace(shown, errorBox(e, "Loading the history"))
    }
  }

  /**
   * A button that runs one change and reloads the table.
   * @param {string} label
   * @param {string} aria
   * @param {() => Promise<string>} action
   */
  const button = (label, aria, action) => {
    const b = /** @type {HTMLButtonElement} */ (h("button", {
      type: "button",
      class: "secondary",
      "aria-label": aria,
      onclick: () => void act(b, outcome, action).then((ok) => (ok ? load() : undefined))
    }, label))
    return b
  }

  /** @param {any} a an account's access */
  const grants = (a) => {
    /** @type {Array<{ kind: "instrumentId" | "programId", id: string, name: string, verb: string }>} */
    const all = [
      ...a.instruments.map((/** @type {any} */ i) => ({
        kind: /** @type {const} */ ("instrumentId"),
        id: i.id,
        name: i.name,
        verb: "files for"
      })),
      ...a.programs.map((/** @type {any} */ p) => ({ kind: /** @type {const} */ ("programId"), id: p.id, name: p.name, verb: "reads" }))
    ]
    if (all.length === 0) return h("span", { class: "muted" }, "none")
    return h(
      "ul",
      { class: "grants" },
      all.map((g) =>
        h(
          "li",
          null,
          `${g.verb} ${g.name} `,
          button("Revoke", `Revoke ${a.account}'s grant: ${g.verb} ${g.name}`, async () => {
            const r = await Api.call("DELETE", "/grants", { query: { account: a.account, [g.kind]: g.id } })
            return r.revoked ? `${a.account} no longer ${g.verb} ${g.name}.` : `${a.account} had no such grant; nothing changed.`
          })
        )
      )
    )
  }

  const load = async () => {
    if (body.querySelector("button[aria-busy]") !== null) return
    const accounts = await Api.get("/access")
    if (!ctx.current()) return
    replace(
      body,
      table(
        "Accounts",
        [
          { header: "Account", cell: (a) => h("span", { title: a.displayName }, a.account) },
          { header: "Role", cell: (a) => a.role },
          { header: "State", cell: (a) => badge(a.active ? "active" : "disabled") },
          { header: "Grants", cell: grants },
          { header: "Usable tokens", cell: (a) => F.count(a.usableTokens) },
          { header: "Next expiry", cell: (a) => (a.usableTokens > 0 && a.nextExpiry === null ? "never" : F.time(a.nextExpiry)) },
          { header: "Last used", cell: (a) => F.time(a.lastUsedAt) },
          {
            header: "History",
            cell: (a) =>
              h("button", {
                type: "button",
                class: "secondary",
                "aria-label": `History of ${a.account}`,
                onclick: () => void showHistory(a.account)
              }, "History")
          },
          {
            header: "Action",
            cell: (a) =>
              a.account === ctx.session.account
                ? h("span", { class: "muted" }, "you")
                : button(a.active ? "Disable" : "Enable", `${a.active ? "Disable" : "Enable"} account ${a.account}`, async () => {
                  await Api.patch(`/accounts/${encodeURIComponent(a.account)}`, { active: !a.active })
                  return a.active ? `${a.account} is disabled: its tokens are refused.` : `${a.account} is enabled again.`
                })
          }
        ],
        accounts,
        "No accounts."
      )
    )
  }
  try {
    await load()
  } catch (e) {
    replace(body, errorBox(e, "Loading accounts"))
    return
  }
  ctx.every(10_000, load)
}
