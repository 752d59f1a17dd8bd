/**
 * The web UI's Access page in a real browser (Debian's chromium through playwright-core) against
 * a real `ccat serve` on a fresh ops-db (CliWorld): an admin sees who can do what, takes a grant
 * back, disables and enables an account (its token refused, then accepted), and reads the
 * account's history; an operator does not get the page. A screenshot goes to
 * `test-artifacts/ui/access.png`.
 */
import { randomUUID } from "node:crypto"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CliWorld from "../cli/CliWorld.js"
import { apiAt, type ApiCall } from "./ApiCall.js"
import { pageErrors, shot, tableCaptioned, unlabelled } from "./UiBrowser.js"
import * as UiBrowser from "./UiBrowser.js"

let w: CliWorld.CliWorld
let browser: Browser
let world: {
  readonly base: string
  readonly tokens: CliWorld.CliWorld["tokens"]
  /** The program the new scientist is granted. */
  readonly programId: string
  /** The signed-in admin's account name. */
  readonly adminName: string
  readonly api: ApiCall
}

beforeAll(async () => {
  const [started, b] = await Promise.all([CliWorld.start(), UiBrowser.launch()])
  w = started
  browser = b
  const api = apiAt(w.url)
  const adminName = (await api(w.tokens.admin, "GET", "/tokens/current")).account as string
  world = { base: w.url, tokens: w.tokens, programId: w.world.program.id, adminName, api }
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await w?.close()
}, 60_000)

/** A fresh tab signed in with `token`; page errors are kept. */
const signedIn = (token: string): Promise<Page> => UiBrowser.signedIn(browser, world.base, token)

describe("web UI: access", () => {
  it("lets an admin see who can do what, take a grant back and disable and enable an account; others do not get the page", async () => {
    const name = `ui-sci-${randomUUID().slice(0, 8)}`
    await world.api(world.tokens.admin, "POST", "/accounts", { name, displayName: "UI access test", role: "scientist" })
    await world.api(world.tokens.admin, "POST", "/grants", { account: name, programId: world.programId })
    const token = (await world.api(world.tokens.admin, "POST", "/tokens", { account: name, label: "access page test" })).token as string
    const page = await signedIn(world.tokens.admin)
    await page.getByRole("link", { name: "Access" }).click()
    const row = tableCaptioned(page, "Accounts").locator("tbody tr", { hasText: name })
    await row.waitFor()
    expect(await row.textContent()).toMatch(/scientist.*active.*reads /s)
    await shot(page, "access")
    expect(await unlabelled(page)).toEqual([])

    await row.getByRole("button", { name: new RegExp(`Revoke ${name}'s grant`) }).click()
    await page.getByText(`${name} no longer reads`).waitFor()
    expect((await world.api(token, "GET", "/tokens/current")).programIds).toEqual([])

    await page.getByRole("button", { name: `Disable account ${name}` }).click()
    await page.getByText(`${name} is disabled: its tokens are refused.`).waitFor()
    const refused = await fetch(`${world.base}/api/v1/tokens/current`, { headers: { authorization: `Bearer ${token}` } })
    expect([refused.status, ((await refused.json()) as any).reason]).toEqual([401, "AccountDisabled"])
    await page.getByRole("button", { name: `Enable account ${name}` }).click()
    await page.getByText(`${name} is enabled again.`).waitFor()
    expect((await world.api(token, "GET", "/tokens/current")).account).toBe(name)
    // the signed-in admin cannot switch itself off from here
    expect(
      await tableCaptioned(page, "Accounts").locator("tbody tr", { hasText: world.adminName }).getByRole("button", {
        name: /Disable|Enable/
      })
        .count()
    ).toBe(0)
    // The account's history: every change above, oldest first, each by the admin who made it.
    await row.getByRole("button", { name: `History of ${name}` }).click()
    await page.getByRole("heading", { name: `History of ${name}` }).waitFor()
    const steps = await tableCaptioned(page, "History (event log)").locator("tbody tr").allInnerTexts()
    expect(steps.map((r) => r.split("\t").slice(1, 3).map((c) => c.trim()))).toEqual([
      ["created", "active"],
      ["-", "granted"],
      ["-", "grant-revoked"],
      ["active", "disabled"],
      ["disabled", "active"]
    ])
    expect(pageErrors(page)).toEqual([])
    await page.context().close()

    const operator = await signedIn(world.tokens.operator)
    expect(await operator.getByRole("link", { name: "Access" }).isVisible()).toBe(false)
    await operator.goto(`${world.base}/ui/#/access`)
    await operator.getByText("This page is for admin accounts").waitFor()
    await operator.context().close()
  })
})
