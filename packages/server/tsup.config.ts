import { defineConfig } from "tsup"
import { cliBundle } from "./cliBundle.js"

/**
 * The server is an application: its published form is the `ccat` command (ESM, Node 20), one
 * bundle with its dependencies inside (cliBundle.ts says why). The library entry an integrator
 * imports, with its type declarations, is built by tsup.lib.config.ts and declarations.mjs.
 */
export default defineConfig({
  ...cliBundle("dist", false),
  clean: true,
  sourcemap: true
})
