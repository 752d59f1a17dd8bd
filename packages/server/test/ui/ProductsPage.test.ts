/**
 * The web UI's Products pages in a real browser (Debian's chromium through playwright-core)
 * against the in-process server: a scientist files a calibrated map of an observation and a
 * combined product of that map through the API; the list shows both, its calibration-level
 * filter narrows it, and a product's page shows its pipeline, its provenance (the input product,
 * linked, and the observation it derives from), its files and that it is not packaged yet; the
 * observation's page leads to the products derived from it. A
 * product id that does not exist says so. A screenshot goes to `test-artifacts/ui/products.png`.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
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

/** The rows of the table captioned `caption`, as their cells' text. */
const rows = (page: Page, caption: string) =>
  page.locator("main table", { has: page.locator("caption", { hasText: caption }) }).locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => (td.textContent ?? "").trim()))
  )

it.layer(Harness.layer(), { timeout: 120_000 })("web UI: products", (it) => {
  it.scoped("a scientist lists products, filters them by calibration level, and reads one's provenance, files and packages", () =>
    Effect.gen(function* () {
      const b = yield* browser
      const baseUrl = yield* Harness.BaseUrl
      const w = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      const token = yield* Harness.tokenFor({ role: "scientist", programIds: [w.program.id] })
      const scientist = yield* Harness.client(token)
      const tag = randomUUID().slice(0, 8)
      const file = (name: string) => ({
        id: randomUUID(),
        relativePath: `products/${tag}/${name}`,
        sizeBytes: 2048,
        checksum: Fixtures.checksum()
      })
      const map = yield* scientist.dataProducts.file({
        payload: {
          id: randomUUID(),
          name: `Orion map ${tag}`,
          pipeline: "ccat-mapmaker",
          pipelineVersion: "1.4.2",
          parameters: { pixelArcsec: 4 },
          calibLevel: 2,
          dataproductType: "image",
          location: w.processing.name,
          inputs: [{ observationId: eou.id }],
          files: [file("map.fits"), file("weights.fits")]
        }
      })
      const mosaic = yield* scientist.dataProducts.file({
        payload: {
          id: randomUUID(),
          name: `Orion mosaic ${tag}`,
          pipeline: "ccat-mosaic",
          pipelineVersion: "0.9",
          calibLevel: 3,
          dataproductType: "cube",
          location: w.processing.name,
          inputs: [{ productId: map.id }],
          files: [file("mosaic.fits")]
        }
      })
      const errors: Array<string> = []
      const page = yield* Effect.promise(async () => {
        const page = await (await b.newContext({ viewport: { width: 1366, height: 900 } })).newPage()
        page.on("pageerror", (e) => errors.push(e.message))
        await page.goto(`${baseUrl}/`)
        await page.getByLabel("API token").fill(token)
        await page.getByRole("button", { name: "Sign in" }).click()
        await page.locator("#signed-in-as").waitFor()
        return page
      })
      const listed = yield* Effect.promise(async () => {
        await page.getByRole("link", { name: "Products" }).click()
        await page.getByRole("link", { name: mosaic.name }).waitFor({ timeout: 15_000 })
        const all = await rows(page, "DataProducts, in filing order")
        await page.getByLabel("Calibration level").selectOption("3")
        await page.getByRole("button", { name: "Filter" }).click()
        await page.waitForURL(/calibLevel=3/)
        await page.getByRole("link", { name: mosaic.name }).waitFor({ timeout: 15_000 })
        return { all, level3: await rows(page, "DataProducts, in filing order") }
      })
      expect(listed.all.map((r) => r.slice(0, 5))).toEqual([
        [map.name, "ccat-mapmaker 1.4.2", "2", "image", "WAITING"],
        [mosaic.name, "ccat-mosaic 0.9", "3", "cube", "WAITING"]
      ])
      expect(listed.level3.map((r) => r[0])).toEqual([mosaic.name])

      const shown = yield* Effect.promise(async () => {
        await page.getByRole("link", { name: mosaic.name }).click()
        await page.getByRole("heading", { name: `Product ${mosaic.name}` }).waitFor({ timeout: 15_000 })
        const result = {
          inputs: await rows(page, "Inputs, in the pipeline's order"),
          observations: await rows(page, "Observations it derives from"),
          files: await rows(page, "Files of this product"),
          packages: await page.getByText("Not packaged yet.").count()
        }
        await fs.mkdir(path.join(repoRoot, "test-artifacts", "ui"), { recursive: true })
        await page.screenshot({ path: path.join(repoRoot, "test-artifacts", "ui", "products.png"), fullPage: true })
        // the input product's link leads to its page, with its parameters
        await page.locator("main table", { has: page.locator("caption", { hasText: "Inputs" }) }).getByRole("link").click()
        await page.getByRole("heading", { name: `Product ${map.name}` }).waitFor({ timeout: 15_000 })
        const parameters = await page.locator("dl.facts dt", { hasText: /^Parameters$/ }).locator("xpath=following-sibling::dd[1]")
          .innerText()
        // from the observation, its products
        await page.goto(`${baseUrl}/ui/#/observations/${eou.id}`)
        await page.locator("#products-of-this").waitFor({ timeout: 15_000 })
        // the observation's own files and packages only: its products' are on their pages
        const ownFiles = {
          empty: await page.getByText("No files filed yet.").count(),
          productFiles: await page.getByText(`products/${tag}/`).count()
        }
        await page.locator("#products-of-this").click()
        await page.locator("#products-scope", { hasText: eou.id.slice(0, 8) }).waitFor({ timeout: 15_000 })
        await page.getByRole("link", { name: mosaic.name }).waitFor({ timeout: 15_000 })
        const derived = await rows(page, "DataProducts, in filing order")
        await page.goto(`${baseUrl}/ui/#/products/${randomUUID()}`)
        await page.getByRole("alert").filter({ hasText: "does not exist or is not visible" }).waitFor({ timeout: 15_000 })
        return { ...result, parameters, derived: derived.map((r) => r[0]), ownFiles }
      })
      expect(shown.inputs).toEqual([["product", map.id.slice(0, 8)]])
      expect(shown.observations).toEqual([[eou.id.slice(0, 8), "products of this observation"]])
      expect(shown.files).toEqual([[`products/${tag}/mosaic.fits`, "2.0 kB", "filed", "-"]])
      expect(shown.packages).toBe(1)
      expect(shown.parameters).toBe(`{"pixelArcsec":4}`)
      expect(shown.derived).toEqual([map.name, mosaic.name])
      expect(shown.ownFiles).toEqual({ empty: 1, productFiles: 0 })
      expect(errors).toEqual([])
    }))
})
