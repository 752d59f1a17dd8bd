import { afterAll, describe, expect, it } from "vitest"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ccat, freePort, tempDir } from "./support.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

describe("ccat demo", () => {
  it("files synthetic observations through the client and shows them ARCHIVED, STAGED and cleaned up", async () => {
    const dir = await tempDir("ccat-demo-")
    dirs.push(dir)
    const port = await freePort()
    const run = ccat([
      "demo",
      "--port",
      String(port),
      "--data-dir",
      path.join(dir, "data"),
      "--observations",
      "2",
      "--small-files",
      "6",
      "--large-files",
      "1",
      "--large-mb",
      "3",
      "--staging-lifetime",
      "5"
    ])
    const code = await run.exited
    const out = run.output()
    expect(code, out).toBe(0)
    expect(out).toMatch(/demo: filed 13 files/)
    expect(out).toMatch(/demo: every package ARCHIVED \(\d+ packages, 0 failed\)/)
    expect(out).toMatch(/demo: STAGED \d+ files/)
    expect(out).toContain("demo: done. Filing to last ARCHIVED:")
    // The SOURCE location is empty again: every filed file was deleted once archived.
    const source = path.join(dir, "data", "locations", "chile-source")
    const left = await fs.readdir(source, { recursive: true, withFileTypes: true }).then((e) => e.filter((x) => x.isFile()).length, () => 0)
    expect(left).toBe(0)
  }, 300_000)

  it("refuses a staging lifetime under a second before it starts anything", async () => {
    const dir = await tempDir("ccat-demo-")
    dirs.push(dir)
    const run = ccat(["demo", "--port", String(await freePort()), "--data-dir", path.join(dir, "data"), "--staging-lifetime", "0"])
    const code = await run.exited
    expect(code).not.toBe(0)
    expect(run.output()).toContain("--staging-lifetime must be a whole number of seconds, at least 1")
    expect(await fs.readdir(dir)).toEqual([])
  }, 60_000)
})
