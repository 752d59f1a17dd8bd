import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url))

/**
 * The suites that take longest, longest first (from a whole run's per-file times). Without timings
 * from an earlier run (CI's fresh clone has none) vitest starts the largest files first, so a long
 * suite in a small file started near the end and ran on alone while the other workers were idle.
 */
const longSuites = [
  "packages/server/test/scale/ListsAndPlanners.test.ts",
  "packages/server/test/wan/RelayWan.test.ts",
  "packages/server/test/lifecycle/Chaos.test.ts",
  "packages/storage-drivers/test/S3.test.ts",
  "packages/server/test/OperatorGuide.test.ts",
  "packages/server/test/lifecycle/RetryTransfers.test.ts",
  "packages/transfer-rsync/test/RsyncTransfer.test.ts",
  "packages/server/test/lifecycle/RetryPackages.test.ts",
  "packages/server/test/cli/OperatorCli.test.ts",
  "packages/server/test/cli/StagingCli.test.ts",
  "packages/storage-drivers/test/Tape.test.ts",
  "packages/server/test/upgrade/PreviousRelease.test.ts",
  "packages/server/test/lifecycle/EndToEndRemote.test.ts",
  "packages/server/test/lifecycle/EndToEndRemoteFailures.test.ts",
  "packages/server/test/lifecycle/CleanupConcurrent.test.ts",
  "packages/server/test/lifecycle/Audit.test.ts",
  "packages/server/test/ui/WebUi.test.ts",
  "packages/server/test/tap/Regions.test.ts",
  "packages/server/test/lifecycle/Cleanup.test.ts",
  "packages/server/test/Demo.test.ts",
  "packages/server/test/lifecycle/StagingCorrupt.test.ts",
  "packages/server/test/wan/ChileWorkersPartition.test.ts",
  "packages/client/test/OutboxFiling.test.ts"
]

/** Starts the long suites first, in `longSuites` order, then the rest in vitest's own order. */
class LongSuitesFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const rank = (file: TestSpecification) => {
      const i = longSuites.findIndex((suite) => file.moduleId.endsWith(`/${suite}`))
      return i === -1 ? longSuites.length : i
    }
    const sorted = await super.sort(files)
    return sorted.map((file, i) => ({ file, i, rank: rank(file) })).sort((a, b) => a.rank - b.rank || a.i - b.i).map(({ file }) => file)
  }
}

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
    sequence: { sequencer: LongSuitesFirst },
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ["default"]
  }
})
