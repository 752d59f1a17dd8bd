import { defineConfig } from "tsup"

/**
 * The server as a library (`import { Main } from "@ccat/server"`): its index as ES modules, every
 * dependency left to the integrator's install, so the integrator's drivers and the server share
 * one copy of Effect and of @ccat/core. The `ccat` command is built by tsup.config.ts.
 *
 * The type declarations (dist/lib/*.d.ts) are written by declarations.mjs, not by tsup's `dts`:
 * tsup always has TypeScript stop on errors, and TypeScript then checks the declarations of the
 * whole program, i.e. of every server module the entry imports, most of whose inferred layer and
 * handler types name internal services that a declaration cannot name. The library's surface is
 * typed explicitly (Assembly.ts); declarations.mjs checks and writes only the modules it reaches.
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
