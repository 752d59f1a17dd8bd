/**
 * The SDK's packages as an integrator installs them: packed by `npm pack` (one run for all five),
 * unpacked into node_modules of a folder outside the workspace, next to the packages they
 * declare as dependencies, and checked there against their built declarations alone. The
 * workspace compiles against the sources, so a value the declarations lose (a name that is both
 * a type and a value inside an `export * as` namespace, as tsup's bundled declarations had it)
 * shows only here.
 *
 * The dependencies are linked from the workspace's node_modules rather than installed again:
 * `npm install` of the tarballs would fetch or copy the same files and take minutes. Only what a
 * package's package.json names is linked (and @types/node, the integrator's own), so a
 * declaration importing a package its package.json does not name fails to resolve, as it would
 * under a strict installer.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const exec = promisify(execFile)
const root = fileURLToPath(new URL("../../", import.meta.url))
const here = fileURLToPath(new URL(".", import.meta.url))
const checkDeclarations = path.join(root, "scripts/checkDeclarations.mjs")

/** The SDK's published packages (the server is an application, checked by examples/custom-server). */
const packages = ["@ccat/core", "@ccat/storage-drivers", "@ccat/transfer-bbcp", "@ccat/transfer-rsync", "@ccat/client"]

interface Manifest {
  readonly exports?: Record<string, null | string | { readonly types?: string }>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
}

/** A process's output, whether it succeeded or not, and its exit code. */
const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  exec(file, args, { cwd, maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, output: `${stdout}${stderr}` }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` })
  )

/** Fails naming the package whose declarations were never built: CI builds before it tests. */
const assertBuilt = async (name: string) => {
  const dir = path.join(root, "node_modules", name)
  const manifest: Manifest = JSON.parse(await fs.readFile(path.join(dir, "package.json"), "utf8"))
  for (const entry of Object.values(manifest.exports ?? {})) {
    if (typeof entry !== "object" || entry === null || entry.types === undefined) continue
    await fs.access(path.join(dir, entry.types)).catch(() => {
      throw new Error(`${name} has no ${entry.types}: run \`npm run build\` first`)
    })
  }
}

/** Links a package of the workspace's node_modules into the install; false if it has none. */
const link = async (modules: string, name: string) => {
  const target = path.join(root, "node_modules", name)
  if (!(await fs.stat(target).then(() => true, () => false))) return false
  await fs.mkdir(path.dirname(path.join(modules, name)), { recursive: true })
  await fs.symlink(target, path.join(modules, name), "dir").catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e
  })
  return true
}

/**
 * A package shaped as tsup's bundled declarations were: `Ids.Id` is a value at run time, but the
 * declarations export it as a type only, and they import a package their package.json lacks.
 */
const writeLossyPackage = async (dir: string) => {
  const pkg = path.join(dir, "node_modules", "@ccat", "lossy")
  await fs.mkdir(pkg, { recursive: true })
  await fs.writeFile(
    path.join(pkg, "package.json"),
    JSON.stringify({ name: "@ccat/lossy", type: "module", exports: { ".": { types: "./index.d.ts", import: "./index.js" } } })
  )
  await fs.writeFile(path.join(pkg, "Ids.js"), "export const Id = { make: (s) => s }\nexport const other = 1\n")
  await fs.writeFile(path.join(pkg, "index.js"), 'export * as Ids from "./Ids.js"\n')
  await fs.writeFile(
    path.join(pkg, "index.d.ts"),
    [
      'import type { Brand } from "not-a-dependency"',
      "declare const Id: { make: (s: string) => Id }",
      'type Id = string & Brand<"Id">',
      "declare const other: number",
      "type Ids_Id = Id",
      "declare const Ids_other: typeof other",
      "declare namespace Ids { export { type Ids_Id as Id, Ids_other as other } }",
      "export { Ids }",
      ""
    ].join("\n")
  )
  await fs.writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "integrator", private: true, type: "module" }))
  await fs.writeFile(path.join(dir, "uses.ts"), 'import { Ids } from "@ccat/lossy"\nexport const id = Ids.Id.make("a")\n')
}

describe.concurrent("the packed SDK packages, installed outside the workspace", () => {
  let dir: string
  let packed: ReadonlyArray<{ readonly name: string; readonly filename: string; readonly files: ReadonlyArray<{ readonly path: string }> }>

  beforeAll(async () => {
    for (const name of packages) await assertBuilt(name)
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-installed-"))
    const modules = path.join(dir, "node_modules")

    const pack = await exec("npm", ["pack", "--json", "--pack-destination", dir, ...packages.flatMap((p) => ["--workspace", p])], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024
    })
    packed = JSON.parse(pack.stdout)
    // what the packages' package.json files name; an optional peer may be missing, as it may be
    // from an integrator's install; @types/node is the integrator's own
    const required = new Set<string>()
    const optional = new Set<string>(["@types/node"])
    for (const { name, filename } of packed) {
      const into = path.join(modules, name)
      await fs.mkdir(into, { recursive: true })
      await exec("tar", ["-xzf", path.join(dir, filename), "--strip-components=1", "-C", into])
      const manifest: Manifest = JSON.parse(await fs.readFile(path.join(into, "package.json"), "utf8"))
      for (const dep of Object.keys(manifest.dependencies ?? {})) required.add(dep)
      for (const peer of Object.keys(manifest.peerDependencies ?? {})) {
        if (manifest.peerDependenciesMeta?.[peer]?.optional === true) optional.add(peer)
        else required.add(peer)
      }
    }
    for (const name of [...required, ...optional]) {
      if (name.startsWith("@ccat/")) continue
      if (!(await link(modules, name)) && required.has(name)) {
        throw new Error(`${name}, a dependency of the packed packages, is not in the workspace's node_modules`)
      }
    }

    await fs.writeFile(path.join(dir, "package.json"), JSON.stringify({ name: "integrator", private: true, type: "module" }))
    await fs.copyFile(path.join(here, "integrator.ts"), path.join(dir, "integrator.ts"))
    await writeLossyPackage(path.join(dir, "lossy"))
  }, 120_000)

  afterAll(async () => {
    if (dir !== undefined) await fs.rm(dir, { recursive: true, force: true })
  })

  it("ship one declaration file per module, and neither sources nor tests", () => {
    const core = packed.find((p) => p.name === "@ccat/core")?.files.map((f) => f.path) ?? []
    expect(core).toContain("dist/index.d.ts")
    expect(core).toContain("dist/Ids.d.ts")
    expect(core).toContain("dist/testing/index.d.ts")
    expect(core).toContain("dist/node/index.d.ts")
    for (const { name, files } of packed) {
      expect(files.filter((f) => f.path.startsWith("src/") || f.path.startsWith("test/") || f.path.includes(".test.")), name).toEqual([])
    }
  })

  it("declare every value of every entry point's JavaScript, import only what they depend on, and type-check an integrator's program", async () => {
    const program = path.join(dir, "integrator.ts")
    const { code, output } = await run(process.execPath, [checkDeclarations, "--root", dir, "--program", program, ...packages], dir)
    for (const entry of ["@ccat/core", "@ccat/core/testing", "@ccat/core/node", "@ccat/storage-drivers", "@ccat/client"]) {
      expect(output).toContain(`${entry}: `)
    }
    expect(output).not.toContain("missing from the declarations:")
    expect(output).not.toContain("error in")
    expect(code, output).toBe(0)
  })

  it("are checked by a check that names a value only the JavaScript has, an import nothing answers, and a program's error", async () => {
    const lossy = path.join(dir, "lossy")
    const { code, output } = await run(
      process.execPath,
      [checkDeclarations, "--root", lossy, "--program", path.join(lossy, "uses.ts"), "@ccat/lossy"],
      lossy
    )
    expect(output).toContain("missing from the declarations: Ids.Id")
    expect(output).not.toContain("missing from the declarations: Ids.other")
    expect(output).toContain("index.d.ts imports not-a-dependency, which is not installed with it")
    expect(output).toMatch(/error in a program: uses\.ts:2: Property 'Id' does not exist on type 'typeof Ids'/)
    expect(code).toBe(1)
  })
})
