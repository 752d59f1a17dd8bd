/**
 * @ccat/server as an integrator installs it: the package's `types` are the declarations of the
 * library (dist/lib/*.d.ts, written by the server's build), npm packs every declaration file they
 * import, and this example's server and typesCheck.ts type-check against them alone (this
 * folder's tsconfig.json has no paths to the sources), `any` nowhere they look.
 */
import { describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const exec = promisify(execFile)
const root = fileURLToPath(new URL("../../", import.meta.url))
const server = path.join(root, "packages/server")
const declarations = path.join(server, "dist/lib/index.d.ts")

/** Whether a declaration of the library is missing or older than its module's source. */
const stale = async () => {
  const lib = path.join(server, "dist/lib")
  const declared = await fs.readdir(lib, { recursive: true }).then(
    (files) => files.filter((f) => f.endsWith(".d.ts")),
    (): Array<string> => []
  )
  if (!declared.includes("index.d.ts")) return true
  for (const f of declared) {
    const built = (await fs.stat(path.join(lib, f))).mtimeMs
    const source = await fs.stat(path.join(server, "src", f.replace(/\.d\.ts$/, ".ts"))).then((s) => s.mtimeMs, () => Infinity)
    if (source > built) return true
  }
  return false
}

describe("@ccat/server's declarations", () => {
  it("are what the package's types name, are all packed, and the custom server type-checks against them", async () => {
    // CI builds before it tests; here the declarations are written again when a source is newer
    if (await stale()) await exec(process.execPath, ["declarations.mjs"], { cwd: server })
    const pkg = JSON.parse(await fs.readFile(path.join(server, "package.json"), "utf8"))
    expect(pkg.exports["."]).toEqual({ types: "./dist/lib/index.d.ts", import: "./dist/lib/index.js" })

    const { stdout } = await exec("npm", ["pack", "--dry-run", "--json", "--workspace", "@ccat/server"], { cwd: root })
    const packed = new Set((JSON.parse(stdout)[0].files as Array<{ path: string }>).map((f) => f.path))
    const declared = (await fs.readdir(path.join(server, "dist/lib"), { recursive: true })).filter((f) => f.endsWith(".d.ts"))
    expect(declared).toContain("index.d.ts")
    expect(declared).toContain("Assembly.d.ts")
    for (const f of declared) expect(packed, f).toContain(`dist/lib/${f}`)

    const index = await fs.readFile(declarations, "utf8")
    expect(index).toContain(`export * as Main from "./Assembly.js"`)

    const tsc = path.join(root, "node_modules/typescript/bin/tsc")
    const result = await exec(process.execPath, [tsc, "-p", "examples/custom-server/tsconfig.json"], { cwd: root }).then(
      () => "",
      (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ""}${e.stderr ?? ""}`
    )
    expect(result).toBe("")
  }, 420_000)
})
