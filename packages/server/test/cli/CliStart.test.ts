/**
 * What `ccat` loads before it runs a command, read from the bundle this run built (its esbuild
 * metafile): the operator commands, which talk to a server over HTTP, must not load the server,
 * the lifecycle, the drivers or their SDKs, whose import is what made the command slow to start.
 * The time itself is measured by bench/cli-start.ts, never asserted here.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { testCliVariable } from "../globalSetup.js"

interface Metafile {
  readonly outputs: Record<
    string,
    { readonly imports: ReadonlyArray<{ readonly path: string; readonly kind: string }>; readonly inputs: Record<string, unknown> }
  >
}

/** The source files that the entry chunk and the chunks it imports statically hold. */
const loadedAtStart = (): ReadonlyArray<string> => {
  const cli = process.env[testCliVariable]!
  const meta = JSON.parse(fs.readFileSync(path.join(path.dirname(cli), "metafile-esm.json"), "utf8")) as Metafile
  const entry = Object.keys(meta.outputs).find((k) => k.endsWith("/cli.js"))!
  const seen = new Set<string>()
  const open = [entry]
  while (open.length > 0) {
    const k = open.pop()!
    if (seen.has(k)) continue
    seen.add(k)
    for (const i of meta.outputs[k]!.imports) if (i.kind === "import-statement" && meta.outputs[i.path] !== undefined) open.push(i.path)
  }
  return [...seen].flatMap((k) => Object.keys(meta.outputs[k]!.inputs))
}

describe("ccat start", () => {
  it("loads neither the server nor the lifecycle, the drivers, the relay or their SDKs before a command runs", () => {
    const loaded = loadedAtStart()
    // paths are relative to the repository, where the run bundled it
    assert.include(loaded, "packages/server/src/cli/Status.ts", "the operator commands are in the entry")
    assert.include(loaded, "node_modules/effect/dist/esm/Effect.js")
    const heavy = [
      /server\/src\/Main\.ts$/,
      /server\/src\/HttpServer\.ts$/,
      /server\/src\/lifecycle\//,
      /server\/src\/relay\/Relay\.ts$/,
      /server\/src\/backup\//,
      /storage-drivers\/src\//,
      /transfer-(bbcp|rsync)\/src\//,
      /node_modules\/(@aws-sdk|@smithy|undici|nodemailer|pg-copy-streams|tar-stream)\//
    ]
    const found = loaded.filter((f) => heavy.some((h) => h.test(f)))
    assert.deepStrictEqual(found, [], "loaded at start")
  })

  it("the bundled command answers --help and --version", () => {
    const help = spawnSync(process.execPath, [process.env[testCliVariable]!, "--help"], { encoding: "utf8", timeout: 60_000 })
    assert.strictEqual(help.status, 0, help.stderr)
    assert.include(help.stdout, "ccat")
    assert.include(help.stdout, "serve")
    const version = spawnSync(process.execPath, [process.env[testCliVariable]!, "--version"], { encoding: "utf8", timeout: 60_000 })
    assert.strictEqual(version.status, 0, version.stderr)
    assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+/)
  })
})
