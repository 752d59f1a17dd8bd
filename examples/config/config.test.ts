import { describe, expect, it } from "vitest"
import { ccat } from "../../packages/server/test/support.js"

describe("examples/config/ccat.yaml", () => {
  it("is a valid configuration", async () => {
    const run = ccat(["config", "check", "--config", "examples/config/ccat.yaml"])
    expect(await run.exited, run.output()).toBe(0)
    expect(run.output()).toContain("route chile -> cologne by bbcp")
    expect(run.output()).toContain("cologne-archive LONG_TERM_ARCHIVE/s3")
  })
})
