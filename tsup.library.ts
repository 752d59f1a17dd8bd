/**
 * The build every SDK package shares: ESM and CommonJS for Node 20, our own packages left
 * external. Declarations are tsc's, one file per module (each package.json's build): tsup's
 * bundled ones keep only the type of a name that is both a type and a value inside an
 * `export * as` namespace.
 */
import { defineConfig, type Options } from "tsup"

/** The tsup configuration of a library package with these entry points. */
export const library = (entry: ReadonlyArray<string>): Options | Array<Options> =>
  defineConfig({
    entry: [...entry],
    format: ["esm", "cjs"],
    dts: false,
    clean: true,
    sourcemap: true,
    target: "node20",
    shims: true,
    tsconfig: "tsconfig.build.json",
    external: [/^@ccat\//, "vitest", "@effect/vitest"]
  }) as Options
