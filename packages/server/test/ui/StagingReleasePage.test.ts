/**
 * Release on a staging request's page, in a real browser (Debian's chromium through
 * playwright-core) against the in-process server: the button is offered only to those the API
 * lets release the request (its owner, operators and admins) and only once it is completed or
 * failed; it asks once more, Cancel changes nothing, and the answer is shown (the release time,
 * or the API's refusal when the request moved on while the question was open). Another
 * scientist of the same program is not shown the request at all. A screenshot of the question
 * goes to `test-artifacts/ui/staging-release.png`.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { Browser, Page } from "playwright-core"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import { apiAt } from "./ApiCall.js"
import { launch, pageErrors, shot, signedIn } from "./UiBrowser.js"

const browser = Effect.acquireRelease(Effect.promise(launch), (b: Browser) => Effect.promise(() => b.close()))

/** Opens a staging request's page and waits for its state to be shown. */
const openRequest = (page: Page, base: string, id: string) =>
  Effect.promise(async () => {
    await page.goto(`${base}/ui/#/staging/${id}`)
    await page.locator("#staging-status").waitFor({ timeout: 15_000 })
  })

const releaseButton = (page: Page) => page.getByRole("button", { name: "Release", exact: true })

it.layer(Harness.layer(), { timeout: 120_000 })("web UI: releasing a staging request", (it) => {
  it.scoped(
    "the owner, an operator and an admin are offered Release once the request is completed or failed; it is confirmed, its result or refusal shown",
    () =>
      Effect.gen(function* () {
        const b = yield* browser
        const base = yield* Harness.BaseUrl
        const sql = yield* SqlClient.SqlClient
        const api = apiAt(base)
        const w = yield* Fixtures.world.pipe(Effect.orDie)
        const eou = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
        const ownerName = `owner-${Fixtures.suffix()}`
        const owner = yield* Harness.tokenFor({ role: "scientist", name: ownerName, programIds: [w.program.id] })
        const colleague = yield* Harness.tokenFor({ role: "scientist", programIds: [w.program.id] })
        const operator = yield* Harness.tokenFor({ role: "operator" })
        /** A request of the owner's for the observation, in a state the staging worker would have left it in. */
        const request = (status: string) =>
          Effect.gen(function* () {
            const [row] = yield* sql<{ id: string }>`
              insert into staging_request (account_id, data_location_id, status, expires_at, error_message)
              select a.id, ${w.processing.id}, ${status}::operation_status, now() + interval '1 day',
                     ${status === "failed" ? "no archive copy could be read" : null}
              from account a where a.name = ${ownerName} returning id`
            yield* sql`insert into staging_request_item (staging_request_id, executed_obs_unit_id) values (${row!.id}, ${eou.id})`
            return row!.id
          })
        const releasedAt = (id: string) => Effect.promise(() => api(owner, "GET", `/staging-requests/${id}`).then((r) => r.releasedAt))
        const done = yield* request("completed")
        const running = yield* request("in_progress")
        const failed = yield* request("failed")

        // The owner: no Release while the request is being served; it appears once it is completed.
        const ownerPage = yield* Effect.promise(() => signedIn(b, base, owner))
        yield* openRequest(ownerPage, base, running)
        expect(yield* Effect.promise(() => releaseButton(ownerPage).count())).toBe(0)
        yield* sql`update staging_request set status = 'completed', updated_at = now() where id = ${running}`
        yield* Effect.promise(() => releaseButton(ownerPage).waitFor({ timeout: 15_000 }))

        // Asked once more; Cancel changes nothing; Yes releases and shows when.
        yield* openRequest(ownerPage, base, done)
        const question = yield* Effect.promise(async () => {
          await releaseButton(ownerPage).click()
          const dialog = ownerPage.getByRole("alertdialog")
          await dialog.getByText("Release this request?").waitFor()
          const text = await dialog.innerText()
          await shot(ownerPage, "staging-release")
          await dialog.getByRole("button", { name: "Cancel" }).click()
          return text
        })
        expect(question).toContain(w.processing.name)
        expect(question).toContain("This cannot be undone")
        expect(yield* releasedAt(done)).toBeNull()
        const released = yield* Effect.promise(async () => {
          await releaseButton(ownerPage).click()
          await ownerPage.getByRole("button", { name: "Yes, release" }).click()
          await ownerPage.getByText(/^Released at .* UTC: the request no longer keeps its staged files\.$/).waitFor({ timeout: 15_000 })
          await ownerPage.locator("#staging-released", { hasText: "UTC" }).waitFor({ timeout: 15_000 })
          return { shown: await ownerPage.locator("#staging-released").innerText(), buttons: await releaseButton(ownerPage).count() }
        })
        expect(released.shown).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/)
        expect(released.buttons).toBe(0)
        expect(yield* releasedAt(done)).not.toBeNull()

        // Another scientist of the program is not shown the owner's request, nor a Release for it.
        const colleaguePage = yield* Effect.promise(() => signedIn(b, base, colleague))
        const hidden = yield* Effect.promise(async () => {
          await colleaguePage.goto(`${base}/ui/#/staging/${failed}`)
          await colleaguePage.getByRole("alert").waitFor({ timeout: 15_000 })
          return { alert: await colleaguePage.getByRole("alert").innerText(), buttons: await releaseButton(colleaguePage).count() }
        })
        expect(hidden.alert).toMatch(/does not exist|not visible|not found/i)
        expect(hidden.buttons).toBe(0)

        // An operator releases the owner's failed request; retried meanwhile, the release is refused and said why.
        const operatorPage = yield* Effect.promise(() => signedIn(b, base, operator))
        yield* openRequest(operatorPage, base, failed)
        const refused = yield* Effect.promise(async () => {
          await releaseButton(operatorPage).click()
          await operatorPage.getByRole("alertdialog").getByText("Release this request?").waitFor()
          return operatorPage
        }).pipe(
          Effect.zipLeft(sql`update staging_request set status = 'pending', updated_at = now() where id = ${failed}`),
          Effect.flatMap((page) =>
            Effect.promise(async () => {
              await page.getByRole("button", { name: "Yes, release" }).click()
              const alert = page.getByRole("alert").filter({ hasText: "can be released once it is completed" })
              await alert.waitFor({ timeout: 15_000 })
              return alert.innerText()
            })
          )
        )
        expect(refused).toContain("is pending")
        expect(yield* releasedAt(failed)).toBeNull()
        // The question closes and the page shows the request as it is now: pending, nothing to release.
        const after = yield* Effect.promise(async () => {
          await operatorPage.getByRole("alertdialog").waitFor({ state: "detached", timeout: 15_000 })
          await operatorPage.locator("#staging-status", { hasText: "pending" }).waitFor({ timeout: 15_000 })
          return releaseButton(operatorPage).count()
        })
        expect(after).toBe(0)
        // Failed again: Release is offered on the page's next refresh, and goes through.
        yield* sql`update staging_request set status = 'failed', updated_at = now() where id = ${failed}`
        yield* Effect.promise(async () => {
          await releaseButton(operatorPage).click({ timeout: 15_000 })
          await operatorPage.getByRole("button", { name: "Yes, release" }).click()
          await operatorPage.getByText(/^Released at .* UTC/).waitFor({ timeout: 15_000 })
        })
        expect(yield* releasedAt(failed)).not.toBeNull()

        // An admin is offered Release on the owner's request too.
        const admin = yield* Harness.tokenFor({ role: "admin" })
        const adminPage = yield* Effect.promise(() => signedIn(b, base, admin))
        yield* openRequest(adminPage, base, running)
        yield* Effect.promise(() => releaseButton(adminPage).waitFor({ timeout: 15_000 }))

        for (const page of [ownerPage, colleaguePage, operatorPage, adminPage]) expect(pageErrors(page)).toEqual([])
      }),
    90_000
  )
})
