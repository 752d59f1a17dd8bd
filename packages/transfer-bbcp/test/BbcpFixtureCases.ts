/**
 * The recorded real bbcp runs in ../shared/fixtures/bbcp/ (relative to the repository root): each
 * case's command line, stdout, stderr and exit code, and the shell words of a command line. A
 * missing fixtures folder fails every file that imports this: it never skips.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** The folder of the recorded runs, beside the repository. */
export const fixtures = path.resolve(repoRoot, "../shared/fixtures/bbcp")
if (!existsSync(fixtures)) {
  throw new Error(
    `bbcp fixtures not found at ${fixtures}: the recorded runs must be checked out beside the repository (../shared/fixtures/bbcp)`
  )
}

/** One recorded run: `id` is its file name's stem, `NN-what`. */
export interface Case {
  readonly id: string
  readonly cmd: string
  readonly stdout: string
  readonly stderr: string
  readonly exit: number
}

/** Every recorded run, in id order. */
export const cases: ReadonlyArray<Case> = readdirSync(fixtures)
  .filter((f) => f.endsWith(".cmd"))
  .sort()
  .map((f) => {
    const id = f.slice(0, -4)
    const read = (ext: string) => readFileSync(path.join(fixtures, `${id}.${ext}`), "utf8")
    return { id, cmd: read("cmd").replace(/\n$/, ""), stdout: read("stdout"), stderr: read("stderr"), exit: Number(read("exit").trim()) }
  })

/** POSIX-shell words of a recorded command line (single quotes only, as the recorder wrote them). */
export const words = (line: string): Array<string> => {
  const out: Array<string> = []
  let cur = ""
  let inWord = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (ch === "'") {
      const end = line.indexOf("'", i + 1)
      cur += line.slice(i + 1, end)
      i = end
      inWord = true
    } else if (ch === " ") {
      if (inWord) out.push(cur)
      cur = ""
      inWord = false
    } else {
      cur += ch
      inWord = true
    }
  }
  if (inWord) out.push(cur)
  return out
}

/** The recorded run whose id starts with `prefix`, or throws. */
export const byId = (prefix: string) => {
  const c = cases.find((x) => x.id.startsWith(prefix))
  if (c === undefined) throw new Error(`fixture ${prefix} missing`)
  return c
}
