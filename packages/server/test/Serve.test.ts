import { afterAll, describe, expect, it } from "vitest"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { TestDatabase } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { alive, ccat, freePort, tempDir, waitFor } from "./support.js"

const dirs: Array<string> = []

/** Creates an operator's token with `ccat token create` against the server's ops-db. */
const operatorToken = async (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<string> => {
  const create = ccat(["token", "create", "--account", "health-operator", "--role", "operator", "--json", ...args], env)
  expect(await create.exited, create.output()).toBe(0)
  return JSON.parse(create.output().trim().split("\n").filter((l) => l.startsWith("{")).at(-1)!).token
}

/** The health answer as the holder of `token` sees it. */
const healthAs = async (port: number, token?: string): Promise<any> =>
  (await fetch(`http://127.0.0.1:${port}/api/v1/health`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }))
    .json()
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

describe("ccat serve on the embedded default", () => {
  it("answers health with its database and topology to an operator only, and stops cleanly on Ctrl-C leaving no PostgreSQL", async () => {
    const dir = await tempDir("ccat-serve-")
    dirs.push(dir)
    const port = await freePort()
    const server = ccat(["serve", "--port", String(port), "--data-dir", path.join(dir, "data")])
    const response = await waitFor(`http://127.0.0.1:${port}/api/v1/health`, 60_000, server)
    const anonymous = (await response.json()) as any
    expect(anonymous.status).toBe("ok")
    expect(anonymous.version).toBeTypeOf("string")
    // Where the database is and what runs where is not for anyone who asks.
    expect(anonymous.database).toBeUndefined()
    expect(anonymous.topology).toBeUndefined()
    expect((await healthAs(port, "ccat_nosuch_tokensecretthatisnotknown")).database).toBeUndefined()
    const instrument = ccat([
      "token",
      "create",
      "--account",
      "health-daq",
      "--role",
      "scientist",
      "--json",
      "--data-dir",
      path.join(dir, "data")
    ])
    expect(await instrument.exited, instrument.output()).toBe(0)
    const scientistToken = JSON.parse(instrument.output().trim().split("\n").filter((l) => l.startsWith("{")).at(-1)!).token
    expect((await healthAs(port, scientistToken)).database).toBeUndefined()
    const health = await healthAs(port, await operatorToken(["--data-dir", path.join(dir, "data")]))
    expect(health.status).toBe("ok")
    expect(health.database.kind).toBe("embedded")
    expect(health.database.reachable).toBe(true)
    expect(health.database.migrations.length).toBeGreaterThan(0)
    expect(health.topology.sites.map((s: any) => s.name)).toEqual(["chile", "cologne"])
    expect(health.topology.sites[1].locations.map((l: any) => l.type)).toEqual(["BUFFER", "LONG_TERM_ARCHIVE", "PROCESSING"])
    const ready = await fetch(`http://127.0.0.1:${port}/api/v1/ready`)
    expect(ready.status).toBe(200)
    const openapi = (await (await fetch(`http://127.0.0.1:${port}/api/v1/openapi.json`)).json()) as any
    expect(openapi.paths["/api/v1/health"]).toBeDefined()

    const pidText = await fs.readFile(path.join(dir, "data", "postgres", "postmaster.pid"), "utf8")
    const postgresPid = Number(pidText.split("\n")[0])
    expect(alive(postgresPid)).toBe(true)
    server.child.kill("SIGINT")
    const code = await server.exited
    expect(code).toBe(0)
    expect(alive(postgresPid)).toBe(false)
    await expect(fs.stat(path.join(dir, "data", "postgres", "postmaster.pid"))).rejects.toThrow()
    expect(server.output()).toContain(`listening on http://127.0.0.1:${port}`)
  })

  it("restarts on the same data folder after SIGTERM", async () => {
    const dir = await tempDir("ccat-serve-")
    dirs.push(dir)
    for (let round = 0; round < 2; round++) {
      const port = await freePort()
      const server = ccat(["serve", "--port", String(port)], { CCAT_DATA_DIR: path.join(dir, "data") })
      const health = (await (await waitFor(`http://127.0.0.1:${port}/api/v1/health`, 60_000, server)).json()) as any
      expect(health.status).toBe("ok")
      server.child.kill("SIGTERM")
      expect(await server.exited).toBe(0)
    }
  })
})

describe("ccat serve with DATABASE_URL", () => {
  it("uses that server, migrates it, and reports it as external", async () => {
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const db = yield* TestDatabase.freshDatabase
          const dir = yield* Effect.promise(() => tempDir("ccat-external-"))
          dirs.push(dir)
          const port = yield* Effect.promise(() => freePort())
          const server = ccat(["serve", "--port", String(port), "--data-dir", path.join(dir, "data")], {
            DATABASE_URL: Redacted.value(db.url)
          })
          yield* Effect.promise(() => waitFor(`http://127.0.0.1:${port}/api/v1/health`, 60_000, server))
          const health = yield* Effect.promise(async () =>
            healthAs(port, await operatorToken(["--data-dir", path.join(dir, "data")], { DATABASE_URL: Redacted.value(db.url) }))
          )
          expect(health.database.kind).toBe("external")
          expect(health.database.target).toContain(`/${db.name}`)
          expect(health.database.target).not.toContain("@")
          expect(health.database.migrations.length).toBeGreaterThan(0)
          server.child.kill("SIGINT")
          expect(yield* Effect.promise(() => server.exited)).toBe(0)
          // No embedded cluster was made when a real server was named.
          yield* Effect.promise(() => expect(fs.stat(path.join(dir, "data", "postgres"))).rejects.toThrow())
        })
      )
    )
  })
})

describe("ccat worker", () => {
  it("refuses a site the configuration does not have", async () => {
    const dir = await tempDir("ccat-worker-")
    dirs.push(dir)
    const run = ccat(["worker", "--site", "atacama", "--data-dir", path.join(dir, "data")])
    expect(await run.exited).toBe(1)
    expect(run.output()).toContain('no site is named "atacama" in the configuration; its sites are chile, cologne')
  })

  it("runs one site's lifecycle workers until SIGTERM", async () => {
    const dir = await tempDir("ccat-worker-")
    dirs.push(dir)
    const run = ccat(["worker", "--site", "chile", "--data-dir", path.join(dir, "data")])
    const deadline = Date.now() + 60_000
    while (!run.output().includes("lifecycle workers running at site chile") && Date.now() < deadline) {
      if (run.child.exitCode !== null) break
      await new Promise((r) => setTimeout(r, 200))
    }
    expect(run.output()).toContain("lifecycle workers running at site chile")
    run.child.kill("SIGTERM")
    expect(await run.exited).toBe(0)
  })
})

describe("ccat with a bad configuration", () => {
  it("refuses to start, naming each broken field, and starts nothing", async () => {
    const dir = await tempDir("ccat-config-")
    dirs.push(dir)
    const file = path.join(dir, "ccat.yaml")
    await fs.writeFile(
      file,
      [
        "server:",
        "  port: 99999",
        "sites:",
        "  - name: chile",
        "    shortName: cl",
        "    locations:",
        "      - name: chile-buffer",
        "        type: BUFER",
        "        technology: disk",
        "        driver: { root: /data/buffer }",
        "routes:",
        "  - { from: chile, to: cornell, adapter: rsync }"
      ].join("\n")
    )
    const run = ccat(["serve", "--config", file, "--data-dir", path.join(dir, "data")])
    expect(await run.exited).toBe(1)
    const out = run.output()
    expect(out).toContain(`the configuration in ${file} is not valid`)
    expect(out).toContain("server.port: must be a port from 0 to 65535")
    expect(out).toContain('sites[0].locations[0].type: expected "SOURCE" | "BUFFER" | "LONG_TERM_ARCHIVE" | "PROCESSING", got "BUFER"')
    expect(out).not.toContain("    at ")
    await expect(fs.stat(path.join(dir, "data"))).rejects.toThrow()
  })

  it("reports YAML that does not parse", async () => {
    const dir = await tempDir("ccat-config-")
    dirs.push(dir)
    const file = path.join(dir, "ccat.yaml")
    await fs.writeFile(file, "sites: [\n  - name: chile\n")
    const run = ccat(["config", "check", "--config", file])
    expect(await run.exited).toBe(1)
    expect(run.output()).toContain("cannot be parsed")
  })

  it("config check accepts a valid file and lists the topology", async () => {
    const dir = await tempDir("ccat-config-")
    dirs.push(dir)
    const file = path.join(dir, "ccat.json")
    await fs.writeFile(
      file,
      JSON.stringify({
        sites: [
          {
            name: "chile",
            shortName: "cl",
            locations: [{ name: "chile-buffer", type: "BUFFER", technology: "disk", driver: { root: "/b" } }]
          },
          {
            name: "cologne",
            shortName: "col",
            role: "main",
            locations: [{ name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: "/c" } }]
          }
        ],
        routes: [{ from: "chile", to: "cologne", adapter: "rsync", options: { host: "cologne.example.org" } }]
      })
    )
    const run = ccat(["config", "check", "--config", file])
    expect(await run.exited).toBe(0)
    expect(run.output()).toContain("route chile -> cologne by rsync")
  })
})
