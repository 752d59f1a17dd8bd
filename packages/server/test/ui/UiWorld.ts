/**
 * The world the web UI is tested in: a real `ccat demo --keep-running` (server, every site's
 * workers, synthetic observations filed through @ccat/client) on a fresh PostgreSQL database, an
 * admin token from `ccat token create`, and, made through the API as an admin would: an operator,
 * a scientist granted the demo's program only, and a second program whose one observation
 * really fails packaging (its file's bytes at the SOURCE do not match the filed checksum).
 */
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { createHash, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ccat, freePort, tempDir, type Ccat } from "../support.js"
import { apiAt, type ApiCall } from "./ApiCall.js"

/** Everything a UI test needs to reach and check. */
export interface UiWorld {
  readonly base: string
  readonly demo: Ccat
  readonly tokens: { readonly admin: string; readonly operator: string; readonly scientist: string }
  /** The demo's observing program (the scientist's grant) and its observations. */
  readonly demoProgramId: string
  /** The program the scientist has no grant on, and its observation whose packaging failed. */
  readonly hiddenProgramId: string
  readonly hiddenObservationId: string
  readonly failedPackageId: string
  /** Writes the bytes the instrument filed back over the damaged file, as an operator would. */
  readonly repairDamagedFile: () => Promise<void>
  /** Calls the API with a token; throws on a non-2xx answer, with the body. */
  readonly api: ApiCall
  readonly stop: () => Promise<void>
}

/** A string of markup the hidden observation carries in its metadata. */
export const markup = `<img src="x" id="injected" onerror="document.title='owned'">`

/**
 * The embedded default's two sites, with capacities (so the Sites page has fill levels to show)
 * and small bundles sent after a short wait (so several bundles and attempts exist within seconds).
 */
const topology = (dataDir: string) => {
  const at = (name: string, type: string, capacityBytes: string, extra: object = {}) => ({
    name,
    type,
    technology: "disk",
    driver: { root: path.join(dataDir, "locations", name) },
    capacityBytes,
    ...extra
  })
  return {
    sites: [
      {
        name: "chile",
        shortName: "cl",
        role: "secondary",
        locations: [at("chile-source", "SOURCE", "200 MB"), at("chile-buffer", "BUFFER", "100 MB")]
      },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          at("cologne-buffer", "BUFFER", "100 MB"),
          at("cologne-archive", "LONG_TERM_ARCHIVE", "40 MB", { retention: { keepForever: true } }),
          at("cologne-processing", "PROCESSING", "50 MB")
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: { maxPackageBytes: "1 GB", bundleTargetBytes: "3 MB", bundleMaxWait: "3 seconds", stagingLifetime: "1 days" }
  }
}

/** Starts the world; `stop` ends the demo and drops the database. */
export const start = async (options: { readonly observations: number }): Promise<UiWorld> => {
  const scope = Effect.runSync(Scope.make())
  const db = await Effect.runPromise(Scope.extend(TestDatabase.migratedDatabase, scope))
  const dir = await tempDir("ccat-ui-")
  const dataDir = path.join(dir, "data")
  const env = { DATABASE_URL: Redacted.value(db.url) }
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const config = path.join(dir, "ccat.json")
  await fs.writeFile(config, JSON.stringify(topology(dataDir)))
  const demo = ccat([
    "demo",
    "--config",
    config,
    "--port",
    String(port),
    "--data-dir",
    dataDir,
    "--observations",
    String(options.observations),
    "--small-files",
    "6",
    "--large-files",
    "1",
    "--large-mb",
    "2",
    "--keep-running"
  ], env)
  const stop = async () => {
    if (demo.child.exitCode === null) {
      demo.child.kill("SIGINT")
      await Promise.race([demo.exited, new Promise((r) => setTimeout(r, 15_000))])
      if (demo.child.exitCode === null) demo.child.kill("SIGKILL")
    }
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await fs.rm(dir, { recursive: true, force: true })
  }
  try {
    // Each probe has its own timeout: a request that reaches the port while the server is still
    // building its layers is accepted but not answered, and would wait forever.
    await waitUntil("the demo's server to be ready", async () => {
      if (demo.child.exitCode !== null) throw new Error(`ccat demo exited with ${demo.child.exitCode}`)
      const r = await fetch(`${base}/api/v1/ready`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined)
      return r?.ok ? true : undefined
    }, 90_000)
    const create = ccat(["token", "create", "--account", "ui-admin", "--role", "admin", "--json", "--data-dir", dataDir], env)
    if ((await create.exited) !== 0) throw new Error(`ccat token create failed:\n${create.output()}`)
    const admin = JSON.parse(create.output().trim().split("\n").at(-1)!).token as string

    const api = apiAt(base)
    const tokenFor = async (name: string, role: string, programId?: string) => {
      await api(admin, "POST", "/accounts", { name, displayName: `UI test ${role}`, role })
      if (programId !== undefined) await api(admin, "POST", "/grants", { account: name, programId })
      return (await api(admin, "POST", "/tokens", { account: name, label: "web UI test" })).token as string
    }

    // The demo makes its program and instruments before it files anything.
    const units = await waitUntil(
      "the demo's planned observations",
      async () => {
        const u = (await api(admin, "GET", "/obs-units")) as Array<any>
        return u.length > 0 ? u : undefined
      },
      60_000,
      { intervalMs: 500 }
    )
    const demoProgramId = units[0].observingProgramId as string
    const instrumentId = units[0].instrumentId as string
    const operator = await tokenFor("ui-operator", "operator")
    const scientist = await tokenFor("ui-scientist", "scientist", demoProgramId)

    // A second program, observed with the same instrument; its file is damaged at the SOURCE.
    const hidden = await api(admin, "POST", "/programs", { name: "ui-hidden-survey", title: "Not granted to the scientist" })
    const unit = await api(admin, "POST", "/obs-units", {
      observingProgramId: hidden.id,
      instrumentId,
      name: "hidden-field",
      target: "Hidden"
    })
    const modules = (await api(admin, "GET", `/instrument-modules?instrumentId=${instrumentId}`)) as Array<any>
    const relativePath = `ui-test/${randomUUID()}/damaged.fits`
    const filed = Buffer.from("the bytes the instrument wrote\n")
    const onDisk = Buffer.from("the bytes the disk gives back!\n")
    await fs.mkdir(path.dirname(path.join(dataDir, "locations", "chile-source", relativePath)), { recursive: true })
    await fs.writeFile(path.join(dataDir, "locations", "chile-source", relativePath), onDisk)
    const hiddenObservationId = randomUUID()
    await api(admin, "POST", "/observations", {
      id: hiddenObservationId,
      obsUnitId: unit.id,
      startAt: new Date(Date.now() - 120_000).toISOString(),
      endAt: new Date().toISOString(),
      sourceLocation: "chile-source",
      // Markup in API data: the UI must show it as text, never run it.
      metadata: { note: markup },
      files: [{
        id: randomUUID(),
        module: modules[0].name,
        relativePath,
        sizeBytes: filed.length,
        checksum: `sha256:${createHash("sha256").update(filed).digest("hex")}`
      }]
    })
    const failedPackageId = await waitUntil(
      "the damaged observation's package to fail",
      async () => {
        const page = await api(admin, "GET", `/packages?observationId=${hiddenObservationId}`)
        return page.items.find((p: any) => p.journey === "FAILED")?.id as string | undefined
      },
      60_000,
      { intervalMs: 500 }
    )
    // The demo files its observations one after another: the tests count them all, so the world
    // is ready once every one is there, however slowly a loaded machine got through them.
    await waitUntil(
      `the demo's ${options.observations} observations to be filed`,
      async () => {
        const filed = await api(admin, "GET", "/observations?limit=100")
        return filed.items.length >= options.observations + 1 ? true : undefined
      },
      60_000,
      { intervalMs: 500 }
    )
    return {
      base,
      demo,
      tokens: { admin, operator, scientist },
      demoProgramId,
      hiddenProgramId: hidden.id,
      hiddenObservationId,
      failedPackageId,
      api,
      stop,
      repairDamagedFile: () => fs.writeFile(path.join(dataDir, "locations", "chile-source", relativePath), filed)
    }
  } catch (e) {
    await stop()
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- demo output ---\n${demo.output()}`, { cause: e })
  }
}
