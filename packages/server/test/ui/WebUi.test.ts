/**
 * The web UI in a real browser (Debian's chromium through playwright-core) against a real
 * `ccat demo` whose data flows through every stage while the tests look at it: signing in with
 * tokens of each role, every page, a scientist's staging request followed to completion, an
 * operator's retry of a package that really failed, a scientist kept from another program's
 * observations. The UI's files as served are WebUiFiles.test.ts's, the Access page AccessPage.test.ts's.
 * Screenshots of the main pages go to `test-artifacts/ui/`.
 */
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { waitUntil } from "@ccat/core/testing"
import { pageErrors, shot, tableCaptioned, unlabelled } from "./UiBrowser.js"
import * as UiBrowser from "./UiBrowser.js"
import { markup, start, type UiWorld } from "./UiWorld.js"

let world: UiWorld
let browser: Browser

beforeAll(async () => {
  const [w, b] = await Promise.all([start({ observations: 6 }), UiBrowser.launch()])
  world = w
  browser = b
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await world?.stop()
}, 60_000)

/** A fresh tab on the demo signed in with `token`; API errors in the console fail nothing, page errors do. */
const signedIn = (token: string): Promise<Page> => UiBrowser.signedIn(browser, world.base, token)

describe("web UI in chromium", () => {
  it("refuses a wrong token with the API's reason, then shows who is signed in and the role's pages", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${world.base}/`)
    await expect(page.getByRole("heading", { name: "Sign in" }).isVisible()).resolves.toBe(true)
    await shot(page, "signin")
    expect(await unlabelled(page)).toEqual([])
    await page.getByLabel("API token").fill("ccat_nottherightoneatall_0000000000000000000000000000")
    await page.getByRole("button", { name: "Sign in" }).click()
    const alert = page.getByRole("alert")
    await alert.waitFor()
    expect(await alert.textContent()).toMatch(/Sign-in failed.*(token|Token)/s)
    await page.getByLabel("API token").fill(world.tokens.operator)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.locator("#signed-in-as").waitFor()
    expect(await page.locator("#signed-in-as").textContent()).toBe("Signed in as ui-operator (operator)")
    expect(await page.evaluate("sessionStorage.getItem('ccat.token')")).toBe(world.tokens.operator)
    expect(await page.getByRole("link", { name: "Failures" }).isVisible()).toBe(true)
    await page.getByRole("button", { name: "Sign out" }).click()
    await page.getByRole("heading", { name: "Sign in" }).waitFor()
    expect(await page.evaluate("sessionStorage.getItem('ccat.token')")).toBeNull()
    await context.close()
  })

  it("shows the live pipeline: waiting, moving and failed per stage, refreshed", async () => {
    const page = await signedIn(world.tokens.admin)
    await page.locator("[data-stage=waitingToPackage] [data-figure=waiting]").waitFor()
    expect(await page.locator("ol.stages > li").count()).toBe(6)
    // The damaged observation's package is counted failed, in the archiving stage and as a journey.
    await waitUntil(
      "the FAILED journey figure",
      async () => Number(await page.locator("[data-journey=FAILED] .value").textContent()) >= 1 ? true : undefined,
      15_000
    )
    const first = await page.locator(".refresh").textContent()
    await waitUntil(
      "a refreshed snapshot",
      async () => ((await page.locator(".refresh").textContent()) !== first ? true : undefined),
      10_000
    )
    await shot(page, "pipeline")
    expect(pageErrors(page)).toEqual([])
    await page.context().close()
  })

  it("lists observations with filters and pages; one observation shows its files, packages and every copy", async () => {
    const page = await signedIn(world.tokens.admin)
    await page.getByRole("link", { name: "Observations" }).click()
    // by its caption, not the pipeline's tables the page replaces
    const rows = tableCaptioned(page, "Observations, in order of start time").locator("tbody tr")
    await rows.first().waitFor()
    expect(await rows.count()).toBe(7)
    // Filter by the hidden program: its one observation.
    await page.locator("#filter-program").selectOption(world.hiddenProgramId)
    await page.getByRole("button", { name: "Filter" }).click()
    await waitUntil("the program filter", async () => ((await rows.count()) === 1 ? true : undefined), 10_000)
    expect(await rows.first().textContent()).toContain(world.hiddenObservationId.slice(0, 8))
    // Five per page: the demo's six observations and the hidden one make two pages.
    await page.getByRole("link", { name: "Clear" }).click()
    await page.locator("#filter-limit").selectOption("5")
    await page.getByRole("button", { name: "Filter" }).click()
    await waitUntil("a page of five", async () => ((await rows.count()) === 5 ? true : undefined), 10_000)
    await shot(page, "observations")
    expect(await unlabelled(page)).toEqual([])
    await page.getByRole("link", { name: "Next →" }).click()
    await waitUntil("the second page", async () => ((await rows.count()) === 2 ? true : undefined), 10_000)
    await page.getByRole("link", { name: "← Previous" }).click()
    await waitUntil("back on the first page", async () => ((await rows.count()) === 5 ? true : undefined), 10_000)
    // A time range that ends before anything started: nothing matches.
    await page.goto(`${world.base}/ui/#/observations?to=2020-01-01T00:00`)
    await page.getByText("No observations match.").waitFor()
    // State filter: the demo's observations are completed.
    await page.goto(`${world.base}/ui/#/observations?status=failed`)
    await page.getByText("No observations match.").waitFor()

    // One of the demo's observations, once archived: files, packages, copies with location and site.
    const archived = await waitUntil(
      "an archived demo observation",
      async () => {
        const packages = await world.api(world.tokens.admin, "GET", "/packages?journey=ARCHIVED&limit=1")
        return packages.items[0]?.executedObsUnitId as string | undefined
      },
      60_000,
      { intervalMs: 500 }
    )
    await page.goto(`${world.base}/ui/#/observations/${archived}`)
    await page.getByRole("heading", { name: "Where every copy is" }).waitFor()
    const files = await world.api(world.tokens.admin, "GET", `/files?observationId=${archived}&limit=1000`)
    await page.locator("table", { hasText: "Files of this observation" }).waitFor()
    expect(await page.locator("table", { hasText: "Files of this observation" }).locator("tbody tr").count()).toBe(files.items.length)
    const copies = page.locator("table", { hasText: "Physical copies" })
    // Cleanup removed the buffer copies once archived: what is left is the archive's, at Cologne.
    const archiveRow = copies.locator("tbody tr", { hasText: "cologne-archive" }).first()
    expect(await archiveRow.textContent()).toMatch(/LONG_TERM_ARCHIVE.*cologne.*PRESENT/s)
    expect(await page.locator("table", { hasText: "Packages of this observation" }).textContent()).toContain("ARCHIVED")
    // Its history: filed by the instrument's account (and closed), oldest first.
    expect(await tableCaptioned(page, "History (event log)").locator("tbody tr").first().textContent()).toMatch(/created.*filed/s)
    await shot(page, "observation")

    // API data is text: the hidden observation's metadata holds markup, shown as characters.
    await page.goto(`${world.base}/ui/#/observations/${world.hiddenObservationId}`)
    await page.getByRole("heading", { name: "What the telescope did" }).waitFor()
    expect(await page.locator("main").textContent()).toContain(markup.slice(0, 20))
    expect(await page.locator("#injected").count()).toBe(0)
    expect(await page.title()).not.toBe("owned")
    expect(pageErrors(page)).toEqual([])
    await page.context().close()
  })

  it("shows packages with their history, bundles with their attempts, and throughput charts", async () => {
    const page = await signedIn(world.tokens.operator)
    await page.getByRole("link", { name: "Packages" }).click()
    await page.locator("#filter-journey").selectOption("ARCHIVED")
    await page.getByRole("button", { name: "Filter" }).click()
    const first = page.locator("main table tbody tr a").first()
    await first.waitFor()
    await first.click()
    await page.getByRole("heading", { name: "History" }).waitFor()
    const history = page.locator("table", { hasText: "History (event log)" })
    await history.waitFor()
    expect(await history.textContent()).toContain("completed")
    expect(await page.locator("table", { hasText: "DataTransfer attempts" }).textContent()).toContain("completed")
    await shot(page, "package")

    await page.getByRole("link", { name: "Transfers" }).click()
    const bundle = tableCaptioned(page, "DataTransferPackages, in creation order").locator("tbody tr a").first()
    await bundle.waitFor()
    await bundle.click()
    await page.getByRole("heading", { name: "Attempts" }).waitFor()
    const attempts = page.locator("table", { hasText: "DataTransfer attempts" })
    expect(await attempts.locator("tbody tr").count()).toBeGreaterThanOrEqual(1)
    expect(await attempts.textContent()).toMatch(/chile-buffer.*cologne-buffer/s)
    await shot(page, "bundle")

    await page.getByRole("link", { name: "Throughput" }).click()
    await page.locator("svg.chart").first().waitFor()
    const done = await world.api(world.tokens.operator, "GET", "/transfers?status=completed&limit=1000")
    expect(await page.locator("svg.chart rect.bar").count()).toBeGreaterThanOrEqual(1)
    expect(await page.locator("svg.chart circle.dot").count()).toBe(
      done.items.filter((t: any) => t.throughputBytesPerSecond !== null).length
    )
    await shot(page, "throughput")
    expect(pageErrors(page)).toEqual([])
    await page.context().close()
  })

  it("shows sites with fill and health; an operator takes a location out of service and back", async () => {
    const page = await signedIn(world.tokens.operator)
    await page.getByRole("link", { name: "Sites" }).click()
    await page.locator("section[data-site] table").first().waitFor()
    // Every location has a capacity in this world: one fill meter each, the archive's above zero.
    expect(await page.locator("meter").count()).toBe(5)
    const archiveFill = Number(await page.locator('meter[aria-label="cologne-archive fill"]').getAttribute("value"))
    expect(archiveFill).toBeGreaterThan(0)
    expect(archiveFill).toBeLessThan(1)
    expect(await page.locator("main").textContent()).toContain("healthy")
    expect(await page.locator("table", { hasText: "Routes between sites" }).textContent()).toMatch(/Chile.*Cologne|chile.*cologne/s)
    await shot(page, "sites")
    expect(await unlabelled(page)).toEqual([])
    const locations = (await world.api(world.tokens.operator, "GET", "/locations")) as Array<any>
    const processing = locations.find((l) => l.type === "PROCESSING")
    await page.getByLabel(`Why disable ${processing.name}`).fill("disk replacement")
    await page.locator(`button[data-location="${processing.name}"]`).click()
    await page.getByText(`${processing.name} disabled.`).waitFor()
    const off = await world.api(world.tokens.operator, "GET", `/locations/${processing.id}`)
    expect([off.readable, off.writable, off.deletable]).toEqual([false, false, false])
    await page.locator(`button[data-location="${processing.name}"]`, { hasText: "Enable" }).click()
    await page.getByText(`${processing.name} enabled.`).waitFor()
    const on = await world.api(world.tokens.operator, "GET", `/locations/${processing.id}`)
    expect([on.readable, on.writable, on.deletable]).toEqual([true, true, true])
    // The location's page holds both switches in its history, with who and why.
    await page.getByRole("link", { name: processing.name }).click()
    await page.getByRole("heading", { name: "History" }).waitFor()
    const history = tableCaptioned(page, "History (event log)")
    await history.locator("tbody tr", { hasText: "disk replacement" }).waitFor()
    const rows = (await history.locator("tbody tr").allInnerTexts()).map((r) => r.replace(/\s+/g, " "))
    expect(rows.slice(-2)).toEqual([
      expect.stringMatching(/read\+write\+delete unavailable \S*operator.*disk replacement/),
      expect.stringMatching(/unavailable read\+write\+delete \S*operator/)
    ])
    expect(await unlabelled(page)).toEqual([])
    expect(pageErrors(page)).toEqual([])
    await page.context().close()
  })

  it("lets an operator retry a package that really failed, archived once its file is repaired; a scientist gets no retry and the API refuses one", async () => {
    const scientist = await signedIn(world.tokens.scientist)
    expect(await scientist.getByRole("link", { name: "Failures" }).isVisible()).toBe(false)
    await scientist.goto(`${world.base}/ui/#/failures`)
    await scientist.getByText("Not for your role").waitFor()
    const refused = await scientist.evaluate(async ([token, id]) => {
      const r = await fetch("/api/v1/retries", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ entity: "RawDataPackage", id })
      })
      return r.status
    }, [world.tokens.scientist, world.failedPackageId])
    expect(refused).toBe(403)
    await scientist.context().close()

    const page = await signedIn(world.tokens.operator)
    await page.getByRole("link", { name: "Failures" }).click()
    const row = page.locator("tr", { has: page.locator(`button[data-retry="${world.failedPackageId}"]`) })
    await row.waitFor()
    // The reason the packager recorded: the bytes at the SOURCE did not match the filed checksum.
    expect(await row.locator(".reason").textContent()).toMatch(/checksum|corrupt|size/i)
    await shot(page, "failures")
    // The operator restores the file from the instrument's copy, then retries: the package is
    // packaged again, checked, moved and archived.
    await world.repairDamagedFile()
    await row.getByRole("button", { name: /Retry/ }).click()
    await page.getByText("Retried: failed → pending").waitFor()
    const events = await world.api(world.tokens.operator, "GET", `/events?entity=RawDataPackage&id=${world.failedPackageId}`)
    expect(events.items.some((e: any) => e.fromState === "failed" && e.toState === "pending" && e.actor.includes("ui-operator"))).toBe(true)
    await waitUntil(
      "the retried package to be archived",
      async () => {
        const p = await world.api(world.tokens.operator, "GET", `/packages/${world.failedPackageId}`)
        if (p.journey === "ARCHIVED") return true
        const history = await world.api(world.tokens.operator, "GET", `/events?entity=RawDataPackage&id=${world.failedPackageId}`)
        if (history.items.slice(events.items.length).some((e: any) => e.toState === "failed")) {
          throw new Error(`the retried package failed again: ${p.errorMessage}`)
        }
        return undefined
      },
      60_000,
      { intervalMs: 500 }
    )
    // The package's row leaves the failures (the refresh runs every 5 s).
    await page.locator(`button[data-retry="${world.failedPackageId}"]`).waitFor({ state: "detached", timeout: 15_000 })
    expect(pageErrors(page)).toEqual([])
    await page.context().close()
  })

  it("shows a scientist only the granted program's observations, and follows their staging request to completion", async () => {
    const page = await signedIn(world.tokens.scientist)
    expect(await page.locator("#signed-in-as").textContent()).toBe("Signed in as ui-scientist (scientist)")
    // The pipeline's counts are for everyone; the failures behind them are not.
    await page.locator("[data-journey=ARCHIVED] .value").waitFor()
    expect(await page.getByRole("link", { name: /failed item/ }).count()).toBe(0)
    await page.getByRole("link", { name: "Observations" }).click()
    // the observations table by its caption: until the page replaces the pipeline, "main table"
    // also finds the pipeline's counts tables (a run in CI counted their rows, then none)
    const listed = tableCaptioned(page, "Observations, in order of start time")
    const rows = listed.locator("tbody tr")
    await rows.first().waitFor()
    expect(await rows.count()).toBe(6)
    expect(await listed.textContent()).not.toContain(world.hiddenObservationId.slice(0, 8))
    // Not even by address.
    await page.goto(`${world.base}/ui/#/observations/${world.hiddenObservationId}`)
    await page.getByRole("alert").waitFor()
    expect(await page.getByRole("alert").textContent()).toMatch(/Not found/)
    expect(await page.locator("main").textContent()).not.toContain(markup.slice(0, 20))

    // Stage an archived observation of the demo's program from its page.
    const observation = await waitUntil(
      "an observation whose packages are all archived",
      async () => {
        const obs = await world.api(world.tokens.scientist, "GET", "/observations?limit=100")
        for (const o of obs.items.reverse()) {
          const p = await world.api(world.tokens.scientist, "GET", `/packages?observationId=${o.id}`)
          if (p.items.length > 0 && p.items.every((x: any) => x.journey === "ARCHIVED")) return o.id as string
        }
        return undefined
      },
      90_000,
      { intervalMs: 500 }
    )
    await page.goto(`${world.base}/ui/#/observations/${observation}`)
    await page.getByText("Copy locations are shown to operators and admins.").first().waitFor()
    await page.locator("#stage-this").click()
    await page.getByRole("heading", { name: "Request staging" }).waitFor()
    expect(await page.locator("#stage-observations").inputValue()).toBe(observation)
    expect(await unlabelled(page)).toEqual([])
    // An observation of a program the scientist may not read: the API refuses, nothing is created.
    const before = (await world.api(world.tokens.admin, "GET", "/staging-requests")).items.length
    await page.locator("#stage-observations").fill(world.hiddenObservationId)
    await page.getByRole("button", { name: "Request staging" }).click()
    await page.getByRole("alert").waitFor()
    expect(await page.getByRole("alert").textContent()).toMatch(/The request was refused/)
    expect((await world.api(world.tokens.admin, "GET", "/staging-requests")).items.length).toBe(before)
    // A malformed id is refused before anything is sent.
    await page.locator("#stage-observations").fill("not-an-id")
    await page.getByRole("button", { name: "Request staging" }).click()
    expect(await page.getByRole("alert").textContent()).toContain("Not an observation id: not-an-id")
    await page.locator("#stage-observations").fill(observation)
    // Kept for an hour (UTC), past the demo's short default, so the staged copies are still there below.
    const keepUntil = new Date(Date.now() + 3_600_000).toISOString().slice(0, 16)
    await page.locator("#stage-expires").fill(keepUntil)
    await page.getByRole("button", { name: "Request staging" }).click()
    await page.waitForURL(/#\/staging\/[0-9a-f-]{36}$/)
    await page.getByText(`${keepUntil.replace("T", " ")}:00 UTC`).waitFor()
    await waitUntil("the staging request to complete", async () => {
      const text = await page.locator("#staging-status").textContent()
      if (text === "failed") throw new Error("staging failed")
      return text === "completed" ? true : undefined
    }, 90_000)
    await shot(page, "staging")
    const requestPath = new URL(page.url()).hash
    const requests = await world.api(world.tokens.scientist, "GET", "/staging-requests")
    expect(requests.items.some((r: any) => r.status === "completed" && r.items.some((i: any) => i.executedObsUnitId === observation))).toBe(
      true
    )
    expect(pageErrors(page)).toEqual([])
    await page.context().close()

    // An operator sees where the staged files are now: STAGED copies at the PROCESSING location.
    const operator = await signedIn(world.tokens.operator)
    await operator.goto(`${world.base}/ui/#/observations/${observation}`)
    const staged = operator.locator("table", { hasText: "Physical copies" }).locator("tbody tr", { hasText: "STAGED" })
    await staged.first().waitFor()
    const files = await world.api(world.tokens.operator, "GET", `/files?observationId=${observation}&limit=1000`)
    expect(await staged.count()).toBe(files.items.length)
    expect(await staged.first().textContent()).toMatch(/file .*cologne-processing.*PROCESSING.*cologne/s)
    await operator.context().close()

    // Processing done, the scientist releases the request: asked first, Cancel changes nothing.
    const requestId = requestPath.split("/").pop()!
    const owner = await signedIn(world.tokens.scientist)
    await owner.goto(`${world.base}/ui/${requestPath}`)
    await expect(owner.locator("#staging-released").textContent()).resolves.toBe("not yet")
    await owner.getByRole("button", { name: "Release", exact: true }).click()
    await owner.getByRole("alertdialog").getByText("Release this request?").waitFor()
    await owner.getByRole("button", { name: "Cancel" }).click()
    expect((await world.api(world.tokens.scientist, "GET", `/staging-requests/${requestId}`)).releasedAt).toBeNull()
    await owner.getByRole("button", { name: "Release", exact: true }).click()
    await owner.getByRole("button", { name: "Yes, release" }).click()
    await owner.getByText(/^Released at .* UTC: the request no longer keeps its staged files\.$/).waitFor()
    await expect(owner.locator("#staging-released").textContent()).resolves.toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/)
    expect(await owner.getByRole("button", { name: "Release", exact: true }).count()).toBe(0)
    expect((await world.api(world.tokens.scientist, "GET", `/staging-requests/${requestId}`)).releasedAt).not.toBeNull()
    await expect(unlabelled(owner)).resolves.toEqual([])
    expect(pageErrors(owner)).toEqual([])
    await owner.context().close()
  })
})
