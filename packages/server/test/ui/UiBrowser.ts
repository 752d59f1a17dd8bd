/**
 * What the web UI tests do with the browser (Debian's chromium through playwright-core): launch
 * it, open a tab signed in with a token, and look at a page the way its users and the tests'
 * rules need: script errors it raised, form controls with no accessible name, a table by its
 * caption, and a screenshot into `test-artifacts/ui/`.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { chromium, type Browser, type Page } from "playwright-core"
import { repoRoot } from "../support.js"

/** Where screenshots of the main pages go. */
export const artifacts = path.join(repoRoot, "test-artifacts", "ui")

/** Starts chromium (and makes the screenshots' folder); the caller closes it. */
export const launch = async (): Promise<Browser> => {
  await fs.mkdir(artifacts, { recursive: true })
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
}

const errorsOf = new WeakMap<Page, Array<string>>()

/** A fresh tab (its own sessionStorage) at `base`, signed in with `token`; the page's script errors are kept. */
export const signedIn = async (browser: Browser, base: string, token: string): Promise<Page> => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  const page = await context.newPage()
  const errors: Array<string> = []
  page.on("pageerror", (e) => errors.push(e.message))
  errorsOf.set(page, errors)
  await page.goto(`${base}/`)
  await page.getByLabel("API token").fill(token)
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.locator("#signed-in-as").waitFor()
  return page
}

/** Script errors a page from `signedIn` raised (an uncaught exception is a bug even if the page looks right). */
export const pageErrors = (page: Page): Array<string> => {
  const errors = errorsOf.get(page)
  if (errors === undefined) throw new Error("pageErrors: the page was not opened by signedIn, so its errors were not kept")
  return errors
}

/** Form controls with no accessible name (no label, no aria-label, a button without text): each is a bug. */
export const unlabelled = (page: Page) =>
  page.evaluate(`[...document.querySelectorAll("input, select, textarea, button")]
    .filter((c) => !((c.labels && c.labels.length > 0) || c.getAttribute("aria-label") || (c.tagName === "BUTTON" && c.textContent.trim() !== "")))
    .map((c) => c.outerHTML)`) as Promise<Array<string>>

/**
 * The table in `main` with this caption: right after a click, `main` may still hold the page
 * being replaced, whose tables a bare "main table" would also find.
 */
export const tableCaptioned = (page: Page, caption: string) =>
  page.locator("main table", { has: page.locator("caption", { hasText: caption }) })

/** A full-page screenshot to `test-artifacts/ui/NAME.png`. */
export const shot = (page: Page, name: string) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true })
