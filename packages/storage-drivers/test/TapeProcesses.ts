/**
 * The several-process tape tests' side: child writer processes whose output can be waited on,
 * and what a fresh process checks in the archive they leave.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import { afterAll, assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { build } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { openTape } from "./TapeObjects.js"

/** A child process running `TapeWriterChild.ts`, with everything it printed so far. */
export interface Child {
  readonly process: ChildProcess
  readonly output: () => string
  /** Waits (polling, bounded) until the output satisfies `done`; fails with the output if it never does. */
  readonly waitFor: (what: string, done: (output: string) => boolean, timeoutMs?: number) => Effect.Effect<void>
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

const childScript = fileURLToPath(new URL("./TapeWriterChild.ts", import.meta.url))
const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

let bundled: Promise<string> | undefined
let bundleDir: string | undefined

// Removed when the test file ends: its worker process is stopped, not exited, so an exit handler never runs.
afterAll(() => {
  if (bundleDir !== undefined) fs.rmSync(bundleDir, { recursive: true, force: true })
})

/**
 * The writer bundled once per test process from the same sources (the repository's tsconfig maps
 * the workspace packages to their sources, as tsx does) into one JavaScript file: a child then
 * starts in a fraction of a second, where loading it through tsx took seconds of CPU each time.
 */
const childBundle = (): Promise<string> =>
  bundled ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-tape-child-"))
    bundleDir = dir
    const outfile = path.join(dir, "TapeWriterChild.mjs")
    await build({
      entryPoints: [childScript],
      outfile,
      bundle: true,
      platform: "node",
      format: "esm",
      tsconfig: path.join(repoRoot, "tsconfig.json"),
      logLevel: "warning",
      // the bundled CommonJS dependencies call require
      banner: {
        js: 'import { createRequire as ccatCreateRequire } from "node:module"; const require = ccatCreateRequire(import.meta.url);'
      }
    })
    return outfile
  })()

/**
 * Starts a writer: `count` objects under `prefix` (forever when count is 0, or only holding the
 * write lock when it is "hold") once `go` exists, pausing `pauseMs` between objects.
 */
export const spawnWriter = (root: string, prefix: string, count: number | "hold", go: string, pauseMs = 0) =>
  Effect.acquireRelease(
    Effect.map(Effect.promise(childBundle), (script): Child => {
      const child = spawn(process.execPath, [script, root, prefix, String(count), go, String(pauseMs)], {
        cwd: repoRoot,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      child.stdout!.on("data", (c) => (out += c))
      child.stderr!.on("data", (c) => (out += c))
      const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once("exit", (code, signal) => resolve({ code, signal }))
      )
      return {
        process: child,
        output: () => out,
        waitFor: (what, done, timeoutMs = 60_000) =>
          Effect.gen(function* () {
            const deadline = Date.now() + timeoutMs
            while (!done(out)) {
              if (Date.now() > deadline || (child.exitCode !== null && !done(out))) {
                return yield* Effect.dieMessage(`child ${prefix}: no ${what}:\n${out}`)
              }
              yield* Effect.sleep("5 millis")
            }
          }),
        exited: Effect.promise(() => exit)
      }
    }),
    (child) => Effect.sync(() => child.process.exitCode === null && child.process.kill("SIGKILL"))
  )

/** The `put <key> <checksum>` lines a child printed: the objects it saw committed. */
export const committedBy = (output: string) =>
  output.split("\n").flatMap((line) => {
    const m = /^put (\S+) (\S+)$/.exec(line)
    return m === null ? [] : [{ key: m[1]!, checksum: m[2]! }]
  })

/** A catalog entry as the test reads it from disk. */
export interface Entry {
  readonly volume: string
  readonly fileNumber: number
  readonly checksum: string
  readonly writtenAt: string
}

/** The catalog as a fresh reader finds it on disk: it must parse. */
export const catalogOnDisk = (dir: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, "archive", "catalog.json"), "utf8")) as { objects: Record<string, Entry> }

/** Every entry names its own tape file and reads back with its recorded checksum. */
export const assertEveryEntryReads = (dir: string) =>
  Effect.gen(function* () {
    const { objects } = catalogOnDisk(dir)
    const places = Object.values(objects).map((e) => `${e.volume}:${e.fileNumber}`)
    assert.strictEqual(new Set(places).size, places.length, "no two entries share a tape file")
    const tape = yield* openTape(dir)
    for (const [key, entry] of Object.entries(objects)) {
      assert.strictEqual((yield* StorageDriverSuite.digestOf(tape.get(key))).checksum, entry.checksum, key)
    }
    return { tape, objects }
  })
