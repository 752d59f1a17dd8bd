/**
 * The web UI's Catalog page and the observation page's Source, in a real browser (Debian's
 * chromium through playwright-core) against the in-process server: an admin registers a Source,
 * a position out of range is refused with the API's reason and registers nothing, and an
 * observation of an ObsUnit linked to the Source shows its coordinates; the admin sets a
 * program's proprietary period (a negative one is refused, naming the rule) and a module's band in
 * GHz. A screenshot goes to
 * `test-artifacts/ui/catalog.png`.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { chromium, type Page } from "playwright-core"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import { repoRoot } from "../support.js"

const browser = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] })),
  (b) => Effect.promise(() => b.close())
)

/** A tab signed in with `token` on the server at `baseUrl`; page errors are collected. */
const signedIn = (b: Effect.Effect.Success<typeof browser>, baseUrl: string, token: string) =>
  Effect.promise(async () => {
    const page = await (await b.newContext({ viewport: { width: 1366, height: 900 } })).newPage()
    const errors: Array<string> = []
    page.on("pageerror", (e) => errors.push(e.message))
    await page.goto(`${baseUrl}/`)
    await page.getByLabel("API token").fill(token)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.locator("#signed-in-as").waitFor()
    return { page, errors }
  })

const sourceRow = (page: Page, name: string) =>
  page.locator("main table", { has: page.locator("caption", { hasText: "Sources" }) }).locator("tbody tr", { hasText: name })

it.layer(Harness.layer(), { timeout: 120_000 })("web UI: catalog", (it) => {
  it.scoped("an admin registers a Source (a bad position is refused, naming why); an observation shows its Source", () =>
    Effect.gen(function* () {
      const b = yield* browser
      const baseUrl = yield* Harness.BaseUrl
      const w = yield* Fixtures.world.pipe(Effect.orDie)
      const adminToken = yield* Harness.tokenFor({ role: "admin" })
      const name = `Orion KL ${Fixtures.suffix()}`
      const { page, errors } = yield* signedIn(b, baseUrl, adminToken)
      yield* Effect.promise(async () => {
        await page.getByRole("link", { name: "Catalog" }).click()
        await page.getByRole("heading", { name: "Register a source" }).waitFor()
        const form = page.getByRole("form", { name: "Register a source" })
        await form.getByLabel("Name").fill(name)
        await form.getByLabel("RA (ICRS, degrees)").fill("400")
        await form.getByLabel("Dec (ICRS, degrees)").fill("-5.37264")
        await form.getByRole("button", { name: "Register source" }).click()
        await page.getByRole("alert").filter({ hasText: "ra must be from 0 up to (not including) 360 degrees" }).waitFor({
          timeout: 15_000
        })
        await form.getByLabel("RA (ICRS, degrees)").fill("83.80867")
        await form.getByRole("button", { name: "Register source" }).click()
        await page.getByRole("status").filter({ hasText: `Registered ${name}.` }).waitFor({ timeout: 15_000 })
        await sourceRow(page, name).waitFor({ timeout: 15_000 })
      })
      const cells = yield* Effect.promise(() => sourceRow(page, name).locator("td").allInnerTexts())
      expect(cells.slice(0, 4)).toEqual([name, "83.80867°", "-5.37264°", "fixed"])
      const sql = yield* SqlClient.SqlClient
      expect((yield* sql<{ n: number }>`select count(*)::int as n from source where name = ${name}`.pipe(Effect.orDie))[0].n).toBe(1)

      const admin = yield* Harness.client(adminToken)
      const [source] = (yield* admin.catalog.listSources({ urlParams: { name } })).items
      yield* admin.catalog.updateObsUnit({ path: { id: w.obsUnit.id }, payload: { sourceId: source.id } })
      const eou = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      const facts = yield* Effect.promise(async () => {
        await page.goto(`${baseUrl}/ui/#/observations/${eou.id}`)
        const source = page.locator("dl.facts dt", { hasText: /^Source$/ }).locator("xpath=following-sibling::dd[1]")
        await source.filter({ hasText: name }).waitFor({ timeout: 15_000 })
        const text = await source.innerText()
        await fs.mkdir(path.join(repoRoot, "test-artifacts", "ui"), { recursive: true })
        await page.goto(`${baseUrl}/ui/#/catalog`)
        await sourceRow(page, name).waitFor({ timeout: 15_000 })
        // The rest of the catalog: the program with its period, the modules with their bands.
        await page.locator("main table", { has: page.locator("caption", { hasText: "Instrument modules" }) }).locator("tbody tr", {
          hasText: "280GHz"
        }).waitFor({ timeout: 15_000 })
        // An admin makes the program's data public 30 days after each observation, and gives the module its band.
        const periodForm = page.getByRole("form", { name: `Proprietary period of ${w.program.name}` })
        await periodForm.getByLabel("days (empty: never public)").fill("-3")
        await periodForm.getByRole("button", { name: "Save" }).click()
        await periodForm.getByRole("alert").filter({ hasText: "a proprietary period is 0 to 36500 whole days" }).waitFor({
          timeout: 15_000
        })
        await periodForm.getByLabel("days (empty: never public)").fill("30")
        await periodForm.getByRole("button", { name: "Save" }).click()
        await periodForm.getByRole("status").filter({ hasText: "30 days after each observation" }).waitFor({ timeout: 15_000 })
        await page.locator(`[data-period="${w.program.id}"]`, { hasText: "30 days after each observation" }).waitFor({ timeout: 5_000 })
        const bandForm = page.getByRole("form", { name: "Band of 280GHz" })
        await bandForm.getByLabel("from GHz").fill("250")
        await bandForm.getByLabel("to GHz").fill("310")
        await bandForm.getByRole("button", { name: "Save" }).click()
        await bandForm.getByRole("status").filter({ hasText: "0.9671–1.199 mm (250.0–310.0 GHz)" }).waitFor({ timeout: 15_000 })
        await page.screenshot({ path: path.join(repoRoot, "test-artifacts", "ui", "catalog.png"), fullPage: true })
        return text
      })
      expect(facts).toBe(`${name} (RA 83.80867°, Dec -5.37264°, ICRS)`)
      expect((yield* admin.catalog.getProgram({ path: { id: w.program.id } })).proprietaryPeriodDays).toBe(30)
      expect((yield* admin.catalog.getInstrumentModule({ path: { id: w.modules[0].id } })).emMin).toBeCloseTo(299_792_458 / 310e9, 12)
      expect(errors).toEqual([])
    }))
})
