/**
 * Benchmark: how long `ccat` takes to start an operator command, as an operator types it.
 *
 *   npm run build && npx tsx bench/cli-start.ts            # 10 rounds
 *   BENCH_ROUNDS=20 npx tsx bench/cli-start.ts
 *
 * Side by side, in rotating order, each round:
 *   node          `node -e 0`: the floor, Node's own start
 *   help          the built `ccat --help` (packages/server/dist: one bundle, the server's parts
 *                 loaded only by the commands that run them)
 *   status        the built `ccat status` against a port nobody listens on: start, parse, one
 *                 refused connection, exit 1
 *   tsx help      `ccat --help` from the sources through tsx, as the tests once started it
 * It prints the median wall time and CPU (user + system) of each, and each one's ratio to the
 * floor. On a loaded machine the CPU figures are the ones to compare.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const cli = path.join(root, "packages/server/dist/cli.js")
if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`)
const rounds = Number(process.env.BENCH_ROUNDS ?? 10)

const variants: ReadonlyArray<{ readonly name: string; readonly argv: ReadonlyArray<string> }> = [
  { name: "node", argv: ["-e", "0"] },
  { name: "help", argv: [cli, "--help"] },
  { name: "status", argv: [cli, "status", "--url", "http://127.0.0.1:9"] },
  { name: "tsx help", argv: ["--import", "tsx", path.join(root, "packages/server/src/cli.ts"), "--help"] }
]

/** One start: wall time and the child's CPU, from /usr/bin/time's report on stderr. */
const once = (argv: ReadonlyArray<string>): { wall: number; cpu: number } => {
  const r = spawnSync("/usr/bin/time", ["-f", "%e %U %S", process.execPath, ...argv], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, CCAT_TOKEN: "x" }
  })
  const last = r.stderr.trim().split("\n").pop()!.split(" ").map(Number)
  return { wall: last[0]!, cpu: last[1]! + last[2]! }
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const runs = new Map(variants.map((v) => [v.name, [] as Array<{ wall: number; cpu: number }>]))
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(r + i) % variants.length]!
    runs.get(v.name)!.push(once(v.argv))
  }
  process.stderr.write(`round ${r + 1}/${rounds}\n`)
}
const floor = median(runs.get("node")!.map((x) => x.cpu))
console.log(`load average ${fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}, ${rounds} rounds`)
console.log("variant     wall (median)  cpu (median)  cpu / node")
for (const v of variants) {
  const xs = runs.get(v.name)!
  const cpu = median(xs.map((x) => x.cpu))
  console.log(
    `${v.name.padEnd(11)} ${median(xs.map((x) => x.wall)).toFixed(2).padStart(8)} s  ${cpu.toFixed(2).padStart(9)} s  ${
      (cpu / floor).toFixed(1).padStart(9)
    }`
  )
}
