// @ts-check
/**
 * The UI's entry point: who is signed in, which page the address names (hash routes such as
 * `#/observations/<id>`, so the server serves one HTML file and a reload keeps the page), and the
 * page's lifetime (its refresh timers stop when the user leaves it).
 */
import * as Api from "./api.js"
import { h, replace } from "./dom.js"
import * as Access from "./pages/access.js"
import * as Bundles from "./pages/bundles.js"
import * as Catalog from "./pages/catalog.js"
import * as Failures from "./pages/failures.js"
import * as Integrity from "./pages/integrity.js"
import * as Location from "./pages/location.js"
import * as Observations from "./pages/observations.js"
import * as Packages from "./pages/packages.js"
import * as Pipeline from "./pages/pipeline.js"
import * as Products from "./pages/products.js"
import * as SignIn from "./pages/signin.js"
import * as Sites from "./pages/sites.js"
import * as Staging from "./pages/staging.js"
import * as Throughput from "./pages/throughput.js"
import { errorBox } from "./view.js"

/**
 * @typedef {{ accountId: string, account: string, role: "instrument" | "scientist" | "operator" | "admin", instrumentIds: string[], programIds: string[] }} Session
 * @typedef {{
 *   main: HTMLElement,
 *   params: string[],
 *   query: URLSearchParams,
 *   session: Session,
 *   every: (ms: number, task: () => Promise<void> | void) => void,
 *   current: () => boolean,
 *   go: (hash: string) => void
 * }} Context
 * @typedef {{ path: RegExp, title: string, roles?: string[], render: (ctx: Context) => Promise<void> }} Route
 */

/** @type {Route[]} */
const routes = [
  { path: /^\/$/, title: "Pipeline", render: Pipeline.render },
  { path: /^\/observations$/, title: "Observations", render: Observations.list },
  { path: /^\/observations\/([\w-]+)$/, title: "Observation", render: Observations.one },
  { path: /^\/packages$/, title: "Packages", render: Packages.list },
  { path: /^\/packages\/([\w-]+)$/, title: "Package", render: Packages.one },
  { path: /^\/products$/, title: "Data products", roles: ["scientist", "operator", "admin"], render: Products.list },
  { path: /^\/products\/([\w-]+)$/, title: "Data product", roles: ["scientist", "operator", "admin"], render: Products.one },
  { path: /^\/bundles$/, title: "Transfers", roles: ["operator", "admin"], render: Bundles.list },
  { path: /^\/bundles\/([\w-]+)$/, title: "Transfer bundle", roles: ["operator", "admin"], render: Bundles.one },
  { path: /^\/throughput$/, title: "Throughput", roles: ["operator", "admin"], render: Throughput.render },
  { path: /^\/sites$/, title: "Sites", render: Sites.render },
  { path: /^\/locations\/([\w-]+)$/, title: "Location", roles: ["operator", "admin"], render: Location.one },
  { path: /^\/catalog$/, title: "Catalog", render: Catalog.render },
  { path: /^\/staging$/, title: "Staging", roles: ["scientist", "operator", "admin"], render: Staging.list },
  { path: /^\/staging\/([\w-]+)$/, title: "Staging request", roles: ["scientist", "operator", "admin"], render: Staging.one },
  { path: /^\/failures$/, title: "Failures", roles: ["operator", "admin"], render: Failures.render },
  { path: /^\/integrity$/, title: "Integrity", render: Integrity.render },
  { path: /^\/access$/, title: "Access", roles: ["admin"], render: Access.render }
]

/** @type {Session | null} */
let session = null
/** Bumped on every navigation: an answer that arrives for an older page is dropped. */
let generation = 0
/** @type {number[]} */
let timers = []

const main = /** @type {HTMLElement} */ (document.getElementById("main"))
const notices = /** @type {HTMLElement} */ (document.getElementById("notices"))

/** Who is signed in, from the token in this tab; null when there is none or it is refused. */
const whoAmI = async () => {
  if (Api.token() === null) return null
  try {
    return /** @type {Session} */ (await Api.get("/tokens/current"))
  } catch {
    return null
  }
}

/** Shows the signed-in account and role, and the links the role may use. */
const showSession = () => {
  const who = /** @type {HTMLElement} */ (document.getElementById("who"))
  if (session === null) {
    replace(who)
  } else {
    replace(
      who,
      h(
        "span",
        { id: "signed-in-as" },
        "Signed in as ",
        h("strong", null, session.account),
        " (",
        h("span", { id: "role" }, session.role),
        ")"
      ),
      h("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => signOut("You signed out.") }, "Sign out")
    )
  }
  for (const li of document.querySelectorAll("#nav li")) {
    const roles = (li.getAttribute("data-roles") ?? "").split(" ")
    const item = /** @type {HTMLElement} */ (li)
    item.hidden = session === null || !roles.includes(session.role)
  }
}

/**
 * Ends the session and shows the sign-in page with why.
 * @param {string} why
 */
const signOut = (why) => {
  Api.clearToken()
  session = null
  showSession()
  SignIn.say(why)
  if (location.hash !== "#/signin") location.hash = "#/signin"
  else void route()
}

/** Renders the page the address names. */
const route = async () => {
  const mine = ++generation
  for (const t of timers) clearInterval(t)
  timers = []
  replace(notices)
  const hash = location.hash.replace(/^#/, "") || "/"
  const [pathname, search] = hash.split("?")
  const query = new URLSearchParams(search ?? "")
  if (session === null) session = await whoAmI()
  showSession()
  if (pathname === "/signin" || session === null) {
    document.title = "Sign in · CCAT Data Center"
    await SignIn.render(main, async (s) => {
      session = s
      showSession()
      location.hash = "#/"
      if (hash === "/") void route()
    })
    return
  }
  const found = routes.map((r) => ({ r, m: r.path.exec(pathname) })).find((x) => x.m !== null)
  for (const a of document.querySelectorAll("#nav a")) {
    const target = (a.getAttribute("href") ?? "").slice(1)
    if (target === "/" ? pathname === "/" : pathname.startsWith(target)) a.setAttribute("aria-current", "page")
    else a.removeAttribute("aria-current")
  }
  if (found === undefined || found.m === null) {
    document.title = "Not found · CCAT Data Center"
    replace(main, h("h1", null, "Not found"), h("p", null, "No page at this address. ", h("a", { href: "#/" }, "Back to the pipeline.")))
    return
  }
  const { r, m } = found
  document.title = `${r.title} · CCAT Data Center`
  if (r.roles !== undefined && !r.roles.includes(session.role)) {
    replace(
      main,
      h("h1", null, r.title),
      h(
        "div",
        { class: "alert", role: "alert" },
        h("strong", null, "Not for your role"),
        `This page is for ${r.roles.join(" and ")} accounts; you are signed in as ${session.role}.`
      )
    )
    return
  }
  /** @type {Context} */
  const ctx = {
    main,
    params: m.slice(1),
    query,
    session,
    every: (ms, task) => {
      if (mine !== generation) return
      timers.push(window.setInterval(() => {
        if (mine !== generation) return
        // A refresh that fails leaves the last figures on screen, so say they are stale and why.
        Promise.resolve(task()).then(
          () => replace(notices),
          (e) => {
            if (mine === generation) replace(notices, errorBox(e, "Refreshing failed; the figures below may be stale"))
          }
        )
      }, ms))
    },
    current: () => mine === generation,
    go: (target) => {
      location.hash = target
    }
  }
  replace(main, h("p", { class: "muted", "aria-busy": "true" }, "Loading…"))
  try {
    await r.render(ctx)
  } catch (e) {
    if (mine !== generation) return
    replace(main, h("h1", null, r.title), errorBox(e))
  }
}

window.addEventListener("hashchange", () => {
  // A screen reader follows the new page from its start, as after a page load.
  void route().then(() => {
    if (!main.contains(document.activeElement)) main.focus({ preventScroll: true })
  })
})
window.addEventListener("ccat:unauthorized", (event) => {
  const detail = /** @type {CustomEvent} */ (event).detail
  if (session !== null) signOut(`The server refused your token: ${detail instanceof Error ? detail.message : "sign in again"}.`)
})
void route()
