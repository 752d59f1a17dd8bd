import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url))

/**
 * One vitest run for the whole monorepo. Workspace packages resolve to their sources so tests
 * never run against a stale build. A single PostgreSQL serves every test file (globalSetup);
 * each suite gets a fresh database of its own from the test kit. The `ccat` command is bundled
 * from the sources once per run (the server's globalSetup) for the tests that start it.
 */
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@ccat\/core\/testing$/, replacement: src("core/src/testing/index.ts") },
      { find: /^@ccat\/core\/node$/, replacement: src("core/src/node/index.ts") },
      { find: /^@ccat\/core\/node\/HashRing$/, replacement: src("core/src/node/HashRing.ts") },
      { find: /^@ccat\/core$/, replacement: src("core/src/index.ts") },
      { find: /^@ccat\/storage-drivers$/, replacement: src("storage-drivers/src/index.ts") },
      { find: /^@ccat\/transfer-bbcp$/, replacement: src("transfer-bbcp/src/index.ts") },
      { find: /^@ccat\/transfer-rsync$/, replacement: src("transfer-rsync/src/index.ts") },
      { find: /^@ccat\/client$/, replacement: src("client/src/index.ts") },
      { find: /^@ccat\/server$/, replacement: src("server/src/index.ts") }
    ]
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/**/*.test.ts"],
    globalSetup: ["packages/core/test/globalSetup.ts", "packages/server/test/globalSetup.ts"],
    pool: "forks",
    // Most suites wait on real processes, disks and PostgreSQL rather than on the CPU, so three
    // at a time on a 2-core machine finish sooner without starving each other.
    poolOptions: { forks: { minForks: 1, maxForks: 3 } },
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ["default"]
  }
})
