/**
 * The operator commands against a real lifecycle: `ccat demo --keep-running` files synthetic
 * observations through @ccat/client and its workers package, bundle, transfer (rsync-free
 * `local` adapter between two disk sites), verify and archive them. Once a package is ARCHIVED,
 * `ccat status` must show it in the counts, bytes moved on the route, and copies at the
 * archive; `ccat observations show` must say where each copy is.
 */
import { TestDatabase } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ccat, type Ccat, freePort, tempDir } from "../support.js"
import { runCcat } from "./CliWorld.js"

let demo: Ccat
let dir: string
let url: string
let operator: string
const scope = Effect.runSync(Scope.make())

const topology = (dataDir: string) => {
  const at = (name: string, type: string, extra: object = {}) => ({
    name,
    type,
    technology: "disk",
    driver: { root: path.join(dataDir, "locations", name) },
    capacityBytes: "100 MB",
    ...extra
  })
  return {
    sites: [
      { name: "chile", shortName: "cl", role: "secondary", locations: [at("chile-source", "SOURCE"), at("chile-buffer", "BUFFER")] },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          at("cologne-buffer", "BUFFER"),
          at("cologne-archive", "LONG_TERM_ARCHIVE", { retention: { keepForever: true } }),
          at("cologne-processing", "PROCESSING")
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: { bundleTargetBytes: "1 MB", bundleMaxWait: "2 seconds", stagingLifetime: "1 days" }
  }
}

const until = async <A>(what: string, ms: number, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms\n${demo?.output().slice(-3000)}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

beforeAll(async () => {
  const db = await Effect.runPromise(Scope.extend(TestDatabase.migratedDatabase, scope))
  dir = await tempDir("ccat-cli-life-")
  const dataDir = path.join(dir, "data")
  const config = path.join(dir, "ccat.json")
  await fs.writeFile(config, JSON.stringify(topology(dataDir)))
  const env = { DATABASE_URL: Redacted.value(db.url) }
  const port = await freePort()
  url = `http://127.0.0.1:${port}`
  demo = ccat([
    "demo",
    "--config",
    config,
    "--port",
    String(port),
    "--data-dir",
    dataDir,
    "--observations",
    "2",
    "--small-files",
    "4",
    "--large-files",
    "1",
    "--large-mb",
    "1",
    "--keep-running"
  ], { ...env, CCAT_LOG_FORMAT: "pretty" })
  await until("the demo's server", 120_000, async () => {
    if (demo.child.exitCode !== null) throw new Error(`ccat demo exited:\n${demo.output()}`)
    return (await fetch(`${url}/api/v1/ready`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)) ? true : undefined
  })
  const create = await runCcat(["token", "create", "--account", "cli-operator", "--role", "operator", "--json", "--data-dir", dataDir], env)
  expect(create.code, create.stderr).toBe(0)
  operator = JSON.parse(create.stdout.trim().split("\n").at(-1)!).token
})

afterAll(async () => {
  if (demo !== undefined && demo.child.exitCode === null) {
    demo.child.kill("SIGINT")
    await Promise.race([demo.exited, new Promise((r) => setTimeout(r, 15_000))])
    if (demo.child.exitCode === null) demo.child.kill("SIGKILL")
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true })
})

const run = (args: ReadonlyArray<string>) => runCcat(args, { CCAT_URL: url, CCAT_TOKEN: operator })

describe("ccat operator commands on a running lifecycle", () => {
  it("status, packages and observations show what the workers did: archived packages, bytes on the route, copies at the archive", async () => {
    const archived = await until("an archived package", 240_000, async () => {
      const r = await run(["packages", "list", "--journey", "ARCHIVED", "--json"])
      expect(r.code, r.stderr).toBe(0)
      const items = JSON.parse(r.stdout).items as Array<any>
      return items.length > 0 ? items[0] : undefined
    })
    const [status, human, shown] = await Promise.all([
      run(["status", "--json"]),
      run(["status"]),
      run(["observations", "show", archived.executedObsUnitId, "--json"])
    ])
    expect(status.code, status.stderr).toBe(0)
    const s = JSON.parse(status.stdout)
    expect(s.counts.packageJourneys.ARCHIVED).toBeGreaterThan(0)
    expect(s.counts.transfers.completed).toBeGreaterThan(0)
    const route = s.routes.find((r: any) => r.fromSite === "chile" && r.toSite === "cologne")
    expect(route.lastHour.bytes).toBeGreaterThan(0)
    expect(route.lastHour.transfers).toBeGreaterThan(0)
    expect(route.circuit.state).toBe("closed")
    const archive = s.locations.find((l: any) => l.name === "cologne-archive")
    expect(archive.presentCopies).toBeGreaterThan(0)
    expect(archive.fillFraction).toBeGreaterThan(0)
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/chile -> cologne\s+local\s+\d/)
    expect(shown.code, shown.stderr).toBe(0)
    const o = JSON.parse(shown.stdout)
    expect(o.packages.map((p: any) => p.id)).toContain(archived.id)
    expect(o.copies.filter((c: any) => c.rawDataPackageId === archived.id && c.location === "cologne-archive").map((c: any) => c.status))
      .toEqual(["PRESENT"])
  })
})
