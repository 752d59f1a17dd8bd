import { defineConfig } from "tsup"

export default defineConfig({
  entry: ["src/index.ts", "src/cli.ts"],
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  shims: true,
  tsconfig: "tsconfig.build.json",
  external: [/^@ccat\//, "vitest", "@effect/vitest"]
})
