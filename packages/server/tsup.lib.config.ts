import { defineConfig } from "tsup"

/**
 * The server as a library (`import { Main } from "@ccat/server"`): its index as ES modules, every
 * dependency left to the integrator's install, so the integrator's drivers and the server share
 * one copy of Effect and of @ccat/core. The `ccat` command is built by tsup.config.ts. No type
 * declarations yet: the assembly's inferred layer types cannot be named in a .d.ts.
 */
export default defineConfig({
  entry: { index: "src/index.ts" },
  format: ["esm"],
  platform: "node",
  target: "node20",
  outDir: "dist/lib",
  tsconfig: "tsconfig.build.json",
  external: [/^[^./]/],
  dts: false,
  sourcemap: true,
  clean: true
})
