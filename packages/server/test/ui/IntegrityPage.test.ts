/**
 * The web UI's Integrity page in a real browser (Debian's chromium through playwright-core)
 * against a real `ccat serve` on a real ops-db holding IntegrityRows' rows: an operator sees
 * each location's figures and the package below target; a scientist sees the totals only.
 * A screenshot goes to `test-artifacts/ui/integrity.png`.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { chromium, type Browser, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CliWorld from "../cli/CliWorld.js"
import * as IntegrityRows from "../IntegrityRows.js"
import { repoRoot } from "../support.js"

const artifacts = path.join(repoRoot, "test-artifacts", "ui")
let w: CliWorld.CliWorld
let rows: IntegrityRows.Arranged
let browser: Browser

beforeAll(async () => {
  await fs.mkdir(artifacts, { recursive: true })
  const [world, b] = await Promise.all([
    CliWorld.start(),
    chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] })
  ])
  w = world
  browser = b
  rows = await w.db(IntegrityRows.arrange(w.world))
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await w?.close()
}, 60_000)

/** A fresh tab signed in with `token`, on the Integrity page; page errors are collected. */
const integrityPage = async (token: string): Promise<{ page: Page; errors: Array<string> }> => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } })
  const page = await context.newPage()
  const errors: Array<string> = []
  page.on("pageerror", (e) => errors.push(e.message))
  await page.goto(`${w.url}/`)
  await page.getByLabel("API token").fill(token)
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.locator("#signed-in-as").waitFor()
  await page.getByRole("link", { name: "Integrity" }).click()
  await page.getByRole("heading", { name: "Integrity" }).waitFor()
  return { page, errors }
}

/** The table in `main` with this caption (not a table of the page being replaced). */
const tableCaptioned = (page: Page, caption: string) => page.locator("main table", { has: page.locator("caption", { hasText: caption }) })

/** The cells of the row that holds `text`, as the user reads them. */
const cellsOf = async (page: Page, caption: string, text: string) => {
  const row = tableCaptioned(page, caption).locator("tbody tr", { hasText: text })
  await row.waitFor({ timeout: 15_000 })
  return (await row.locator("td").allInnerTexts()).map((c) => c.replace(/\s+/g, " ").trim())
}

describe("web UI: integrity", () => {
  it("shows an operator each location's figures and the package below target", async () => {
    const { page, errors } = await integrityPage(w.tokens.operator)
    // The heading shows before the figures arrive: wait for the table itself.
    await tableCaptioned(page, "Integrity per location").waitFor({ timeout: 15_000 })
    const header = await tableCaptioned(page, "Integrity per location").locator("thead th").allInnerTexts()
    expect(header).toEqual([
      "Site",
      "Location",
      "Type",
      "Copies",
      "Audited",
      "Last audit",
      "Audit lag",
      "Corrupt",
      "Missing",
      "Dark",
      "Repaired",
      "Last inventory"
    ])
    const a = await cellsOf(page, "Integrity per location", rows.archive.name)
    expect(a.slice(2)).toEqual([
      "LONG_TERM_ARCHIVE (s3)",
      "4",
      "3",
      expect.stringMatching(/ UTC$/),
      "10.0 d",
      "1",
      "1",
      "1",
      "1",
      expect.stringMatching(/ UTC$/)
    ])
    const a2 = await cellsOf(page, "Integrity per location", rows.secondArchive.name)
    expect(a2.slice(2)).toEqual([
      "LONG_TERM_ARCHIVE (disk)",
      "4",
      "2",
      expect.stringMatching(/ UTC$/),
      "never 1 unverified, else 100.0 d",
      "0",
      "0",
      "0",
      "0",
      "-"
    ])
    const below = await cellsOf(page, "Packages below their copy target", rows.packages.missing.slice(0, 8))
    expect(below[1]).toBe("0 of 1")
    expect(below[2]).toContain(`${rows.archive.name} MISSING`)
    expect(below[2]).toContain(`${rows.secondArchive.name} never verified`)
    expect(await tableCaptioned(page, "Packages below their copy target").locator("tbody tr").count()).toBe(1)
    expect(await page.locator("main dl.facts").innerText()).toMatch(
      /Corrupt\s+1\s+Missing\s+1\s+Dark objects\s+1\s+Repaired\s+1\s+Packages below target\s+1/
    )
    await page.screenshot({ path: path.join(artifacts, "integrity.png"), fullPage: true })
    expect(errors).toEqual([])
    await page.context().close()
  }, 60_000)

  it("shows a scientist the totals only", async () => {
    const { page, errors } = await integrityPage(w.tokens.scientist)
    await page.getByText("Your account sees the totals only").waitFor()
    expect(await page.locator("main dl.facts").innerText()).toMatch(/Packages below target\s+1/)
    expect(await page.locator("main table").count()).toBe(0)
    expect(await page.locator("main").innerText()).not.toContain(rows.archive.name)
    expect(errors).toEqual([])
    await page.context().close()
  }, 60_000)
})
