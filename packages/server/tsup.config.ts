import { defineConfig } from "tsup"

/**
 * The server is an application: its published form is the `ccat` command (ESM, Node 20). It
 * ships no type declarations; integrators build on @ccat/core, the drivers and the adapters.
 */
export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  dts: false,
  clean: true,
  sourcemap: true,
  target: "node20",
  tsconfig: "tsconfig.build.json",
  external: [/^@ccat\//, "vitest", "@effect/vitest"]
})
