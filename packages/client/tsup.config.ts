import { defineConfig } from "tsup"

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  // declarations are tsc's, one file per module (package.json's build): tsup's bundled ones keep
  // only the type of a name that is both a type and a value inside an `export * as` namespace
  dts: false,
  clean: true,
  sourcemap: true,
  target: "node20",
  shims: true,
  tsconfig: "tsconfig.build.json",
  external: [/^@ccat\//, "vitest", "@effect/vitest"]
})
