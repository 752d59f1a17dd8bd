import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { promisify } from "node:util"
import { repoRoot } from "../../server/test/support.js"
import { freePort, freshDatabase, type Proc, startServer, stopServer, tempDir } from "./processes.js"

const exec = promisify(execFile)
/** Whether a package's dist is missing or older than any of its sources. */
const stale = async (pkg: string): Promise<boolean> => {
  const built = await fs.stat(path.join(pkg, "dist/index.d.ts")).then((s) => s.mtimeMs, () => 0)
  for (const entry of await fs.readdir(path.join(pkg, "src"), { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && (await fs.stat(path.join(entry.parentPath, entry.name))).mtimeMs > built) return true
  }
  return false
}

let server: Proc
let port: number
let dir: string
let database: Awaited<ReturnType<typeof freshDatabase>>

beforeAll(async () => {
  dir = await tempDir("ccat-client-build-")
  port = await freePort()
  const build = async () => {
    // Core's build is the slow one; it is redone only when its sources are newer than its dist.
    if (await stale(path.join(repoRoot, "packages/core"))) await exec("npm", ["run", "build", "-w", "@ccat/core"], { cwd: repoRoot })
    await exec("npm", ["run", "build", "-w", "@ccat/client"], { cwd: repoRoot })
  }
  database = await freshDatabase()
  ;[server] = await Promise.all([startServer(port, dir, database.url), build()])
}, 180_000)

afterAll(async () => {
  if (server) await stopServer(server)
  await fs.rm(dir, { recursive: true, force: true })
  await database?.drop()
})

describe("the built package from plain JavaScript", () => {
  for (const file of ["smoke.mjs", "smoke.cjs"]) {
    it(`${file}: imports, reaches the server, files through the outbox`, async () => {
      const { stdout } = await exec(process.execPath, [path.join("packages/client/test/fixtures", file)], {
        cwd: repoRoot,
        env: { ...process.env, BASE_URL: `http://127.0.0.1:${port}`, OUTBOX_DIR: path.join(dir, `outbox-${file}`) }
      })
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!)
      expect(result).toMatchObject({
        format: file.endsWith(".mjs") ? "esm" : "cjs",
        modules: ["function", "function", "function", "function"],
        health: "ok",
        filed: "queued",
        flushed: true,
        delivered: 1
      })
    })
  }

  it("declares types for both formats and ships no tests", async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(repoRoot, "packages/client/package.json"), "utf8"))
    expect(pkg.exports["."]).toEqual({ types: "./dist/index.d.ts", import: "./dist/index.js", require: "./dist/index.cjs" })
    const dts = await fs.readFile(path.join(repoRoot, "packages/client/dist/index.d.ts"), "utf8")
    expect(dts).toContain("createClient")
    expect(pkg.files).not.toContain("test")
  })
})
