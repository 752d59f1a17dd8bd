import { defineConfig } from "tsup"

export default defineConfig({
  entry: ["src/index.ts", "src/testing/index.ts", "src/node/index.ts", "src/node/HashRing.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  shims: true,
  tsconfig: "tsconfig.build.json",
  external: [/^@ccat\//, "vitest", "@effect/vitest"]
})
