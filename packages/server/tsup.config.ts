import { defineConfig } from "tsup"
import { cliBundle } from "./cliBundle.js"

/**
 * The server is an application: its published form is the `ccat` command (ESM, Node 20), one
 * bundle with its dependencies inside (cliBundle.ts says why). It ships no type declarations;
 * integrators build on @ccat/core, the drivers and the adapters.
 */
export default defineConfig({
  ...cliBundle("dist", false),
  clean: true,
  sourcemap: true
})
