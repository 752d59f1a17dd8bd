/**
 * Bundles the `ccat` command from the sources once for the whole test run, as the published
 * command is bundled (cliBundle.ts), and names it in `CCAT_TEST_CLI` for every test that starts
 * the real command line. A test starting `ccat` through tsx instead pays seconds of loading
 * hundreds of modules per start; on a loaded machine that was minutes per suite.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "tsup"
import { cliBundle } from "../cliBundle.js"

/** The variable that names the bundled command for the test files (see support.ts). */
export const testCliVariable = "CCAT_TEST_CLI"

/** Set instead when the sources did not bundle: the tests that start `ccat` fail with it, the others run. */
export const testCliErrorVariable = "CCAT_TEST_CLI_ERROR"

/**
 * Bundles the command from the sources into a new folder beside package.json and ui/, which the
 * command finds relative to its own file (one folder per build: several runs may share the
 * working tree). The caller removes `outDir`.
 */
export const bundleFromSources = async (): Promise<{ readonly file: string; readonly outDir: string }> => {
  const server = fileURLToPath(new URL("..", import.meta.url))
  const outDir = await fs.mkdtemp(path.join(server, ".test-cli-"))
  try {
    await build({ ...cliBundle(outDir, true), config: false, sourcemap: false, silent: true, metafile: true })
  } catch (error) {
    await fs.rm(outDir, { recursive: true, force: true })
    throw error
  }
  return { file: path.join(outDir, "cli.js"), outDir }
}

export default async function setup(): Promise<() => Promise<void>> {
  try {
    const { file, outDir } = await bundleFromSources()
    process.env[testCliVariable] = file
    return () => fs.rm(outDir, { recursive: true, force: true })
  } catch (error) {
    process.env[testCliErrorVariable] = `the ccat command did not bundle from the sources: ${
      error instanceof Error ? error.message : String(error)
    }`
    return async () => {}
  }
}
