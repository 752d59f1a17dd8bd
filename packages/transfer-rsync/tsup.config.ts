import { defineConfig } from "tsup"

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  // declarations are tsc's, one file per module (package.json's build): bundled by tsup, a name
  // that is both a type and a value inside an `export * as` namespace kept only its type
  dts: false,
  clean: true,
  sourcemap: true,
  target: "node20",
  shims: true,
  tsconfig: "tsconfig.build.json",
  external: [/^@ccat\//, "vitest", "@effect/vitest"]
})
