/**
 * The conventions of docs/operator-guide.md's source that tell OperatorGuide.test.ts what to do
 * with each fenced block (its header lists them), read in order; and the substitution of the
 * test's values into a block the guide has written to a file.
 */
import * as path from "node:path"
import { repoRoot } from "./support.js"

/** Where the guide is. */
export const guidePath = path.join(repoRoot, "docs", "operator-guide.md")

/** One fenced block of the guide and what its marker says to do with it. */
export interface GuideBlock {
  readonly kind: "file" | "run" | "background" | "stop" | "skip"
  readonly step: string
  readonly lang: string
  readonly body: string
  /** For `file`: the variable naming the file. For `run`: the exit code expected. */
  readonly target?: string
  readonly exit?: number
  readonly line: number
}

/** Reads the guide's marked blocks in order; an unmarked ```sh block is an error. */
export const parseGuide = (text: string): ReadonlyArray<GuideBlock> => {
  const lines = text.split("\n")
  const blocks: Array<GuideBlock> = []
  let marker: string | undefined
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- guide-(test|file): (.+?) -->$/.exec(lines[i]!.trim())
    if (m !== null) {
      marker = `${m[1]}:${m[2]}`
      continue
    }
    const fence = /^```(\w*)\s*$/.exec(lines[i]!)
    if (fence === null) {
      if (lines[i]!.trim() !== "") marker = undefined
      continue
    }
    const lang = fence[1]!
    const start = i
    const body: Array<string> = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!)
    const text = body.join("\n")
    if (marker === undefined) {
      if (lang === "sh") throw new Error(`docs/operator-guide.md:${start + 1}: a sh block without a guide-test marker`)
      continue
    }
    const [kind, spec] = [marker.slice(0, marker.indexOf(":")), marker.slice(marker.indexOf(":") + 1)]
    marker = undefined
    if (kind === "file") {
      blocks.push({ kind: "file", step: `file ${spec}`, lang, body: text, target: spec.replace(/^\$/, ""), line: start + 1 })
      continue
    }
    const words = spec.split(/\s+/)
    if (words[0] === "skip") {
      blocks.push({ kind: "skip", step: `skip@${start + 1}`, lang, body: text, line: start + 1 })
      continue
    }
    const exit = words.find((w) => w.startsWith("exit="))
    blocks.push({
      kind: words.includes("background") ? "background" : words.includes("stop") ? "stop" : "run",
      step: words[0]!,
      lang,
      body: text,
      exit: exit === undefined ? 0 : Number(exit.slice(5)),
      line: start + 1
    })
  }
  return blocks
}

/** Replaces `$NAME` with the environment's value; a name it does not have is an error. */
export const substitute = (text: string, env: Readonly<Record<string, string>>): string =>
  text.replace(/\$([A-Z_][A-Z0-9_]*)/g, (_, name: string) => {
    const v = env[name]
    if (v === undefined) throw new Error(`the guide's file uses $${name}, which the test does not set`)
    return v
  })
