// @ts-check
/**
 * Signing in: the user pastes an API token (an admin hands them out with `ccat token create`).
 * The token is checked against `GET /api/v1/tokens/current` before it is kept.
 */
import * as Api from "../api.js"
import { h, replace } from "../dom.js"
import { errorBox, forgetLookups } from "../view.js"

/** A sentence to show above the form once (why the user is here: signed out, token refused). */
let message = ""

/**
 * Sets the sentence the next sign-in page shows.
 * @param {string} why
 */
export const say = (why) => {
  message = why
}

/**
 * @param {HTMLElement} main
 * @param {(session: import("../main.js").Session) => void | Promise<void>} signedIn
 */
export const render = async (main, signedIn) => {
  const status = h("div", { "aria-live": "polite" })
  if (message !== "") replace(status, h("div", { class: "notice", role: "status" }, message))
  message = ""
  const input = /** @type {HTMLTextAreaElement} */ (h("textarea", {
    id: "token",
    name: "token",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "ccat_…"
  }))
  const submit = /** @type {HTMLButtonElement} */ (h("button", { type: "submit" }, "Sign in"))
  const form = h(
    "form",
    {
      onsubmit: async (/** @type {SubmitEvent} */ event) => {
        event.preventDefault()
        const token = input.value.trim()
        if (token === "") {
          replace(status, h("div", { class: "alert", role: "alert" }, "Paste a token first."))
          return
        }
        submit.disabled = true
        try {
          const session = await Api.call("GET", "/tokens/current", { token })
          Api.setToken(token)
          forgetLookups()
          await signedIn(session)
        } catch (e) {
          replace(status, errorBox(e, "Sign-in failed"))
        } finally {
          submit.disabled = false
        }
      }
    },
    h("label", { for: "token" }, "API token"),
    input,
    h(
      "p",
      { class: "muted" },
      "Kept in this browser tab only (sessionStorage) and sent only to this server. An admin creates tokens with ",
      h("code", null, "ccat token create --account NAME --role ROLE"),
      "."
    ),
    h("div", { class: "actions" }, submit)
  )
  replace(
    main,
    h("section", { class: "card signin", "aria-labelledby": "signin-title" }, h("h1", { id: "signin-title" }, "Sign in"), status, form)
  )
  input.focus()
}
