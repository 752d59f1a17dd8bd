/**
 * `ccat config check` on configurations with a tape archive: a good one (virtual and mtx
 * libraries) passes and is listed, a bad one fails before anything starts, with every problem
 * naming the location's field and option, so an operator never meets it at runtime.
 */
import { afterAll, describe, expect, it } from "vitest"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ccat, tempDir } from "./support.js"

const dirs: Array<string> = []
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true })
})

/** One site with a buffer and two tape archives, in YAML as an operator writes it. */
const yaml = (virtual: string, mtx: string) => `
sites:
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: /srv/ccat/buffer } }
      - name: cologne-vtl
        type: LONG_TERM_ARCHIVE
        technology: tape
        driver:
${virtual}
      - name: cologne-lto
        type: LONG_TERM_ARCHIVE
        technology: tape
        driver:
${mtx}
`

const check = async (text: string) => {
  const dir = await tempDir("ccat-tape-config-")
  dirs.push(dir)
  const file = path.join(dir, "ccat.yaml")
  await fs.writeFile(file, text)
  const run = ccat(["config", "check", "--config", file])
  return { code: await run.exited, output: run.output(), file, dir }
}

describe("ccat config check: tape archives", () => {
  it("accepts a virtual and an mtx tape library and lists them", async () => {
    const { code, output } = await check(yaml(
      `          { root: /srv/ccat/vtl, library: virtual, volumes: 8, volumeBytes: 10 GB, drives: 2, mountLatency: 30 seconds, seekLatency: 200 millis }`,
      `          { root: /srv/ccat/lto, library: mtx, changer: /dev/sg3, drives: [/dev/nst0, /dev/nst1], labels: [CCAT01L8, CCAT02L8], volumeBytes: 12 TB, blockSize: 256 KiB }`
    ))
    expect(code, output).toBe(0)
    expect(output).toContain("cologne-vtl LONG_TERM_ARCHIVE/tape")
    expect(output).toContain("cologne-lto LONG_TERM_ARCHIVE/tape")
  })

  it("refuses bad tape options, naming each location and option, and starts nothing", async () => {
    const { code, output, dir } = await check(yaml(
      `          { root: /srv/ccat/vtl, library: virtual, volumes: 0, seekLatency: fast, mountLatncy: 30 seconds }`,
      `          { root: /srv/ccat/lto, library: mtx, drives: [] , blockSize: 1 GB }`
    ))
    expect(code).toBe(1)
    expect(output).toContain("is not valid")
    const at = (i: number, option: string) => `sites[0].locations[${i}].driver.${option}:`
    expect(output).toContain(at(1, "volumes"))
    expect(output).toContain(`${at(1, "seekLatency")}`)
    expect(output).toContain('"fast" is not a duration')
    expect(output).toContain(`${at(1, "mountLatncy")} is unexpected`)
    expect(output).toContain(at(2, "changer"))
    expect(output).toContain(at(2, "drives"))
    expect(output).toContain(`${at(2, "blockSize")} must be from 512 bytes to 16 MiB`)
    expect(output).not.toContain("    at ")
    // config check creates nothing: no data folder next to the file
    expect(await fs.readdir(dir)).toEqual(["ccat.yaml"])
  })

  it("refuses a tape location without a library", async () => {
    const { code, output } = await check(yaml(`          { root: /srv/ccat/vtl }`, `          { root: /srv/ccat/lto, library: LTO }`))
    expect(code).toBe(1)
    expect(output).toContain(
      `sites[0].locations[1].driver.library: must be "virtual" (volumes as files in a folder) or "mtx" (a real changer and drives), got nothing`
    )
    expect(output).toContain(`sites[0].locations[2].driver.library: must be "virtual"`)
    expect(output).toContain(`got "LTO"`)
  })
})
