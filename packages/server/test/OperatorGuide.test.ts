/**
 * docs/operator-guide.md, run as an operator would run it: its marked shell blocks, in order, in
 * bash, against a real PostgreSQL (a fresh database on the test cluster), a real radosgw, a real
 * sshd for the rsync route and the real `ccat` command (bundled from the sources; `ccat` is a shell
 * function). A block that drifts from the CLI (a renamed command, a flag that no longer exists, an
 * output that changed) fails here.
 *
 * The guide's conventions, read by `parseGuide`:
 * - `<!-- guide-file: $NAME -->` before a fenced block: the block is written to the file named by
 *   the variable, each `$NAME` in it replaced by the test's value (an unknown name fails);
 * - `<!-- guide-test: STEP -->` before a ```sh block: run it; it must exit 0 and pass STEP's checks;
 * - `<!-- guide-test: STEP background -->`: start it and leave it running (servers, workers);
 * - `<!-- guide-test: STEP exit=N -->`: it must exit with N (a refusal the guide shows on purpose);
 * - `<!-- guide-test: STEP stop -->`: a block the test cannot run as written (systemctl): the test
 *   stops what it started in the background instead, and checks the block names those services;
 * - `<!-- guide-test: skip REASON -->`: not run (pg_dump of another version, a host's systemd).
 * Every ```sh block carries one of these, and every STEP has checks here, so neither side can
 * change alone. Variables a block exports are seen by the blocks after it.
 */
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { spawn, type ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import pg from "pg"
import * as Radosgw from "../../../scripts/radosgw.js"
import * as Sshd from "../../../scripts/sshd.js"
import { ccatArgs, freePort, repoRoot, tempDir } from "./support.js"

const guidePath = path.join(repoRoot, "docs", "operator-guide.md")

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

/** What a finished block printed. */
interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const statePath = (work: string) => path.join(work, "guide-state.sh")

/** bash with `ccat` defined as the real CLI, the exported variables of earlier blocks, and `set -euo pipefail`. */
const script = (work: string, body: string, keepState: boolean) =>
  [
    "set -euo pipefail",
    // the command bundled from the sources for this run; through tsx, the repository's tsconfig
    // maps @ccat/* to sources whatever the folder
    `ccat() { TSX_TSCONFIG_PATH="${path.join(repoRoot, "tsconfig.json")}" node ${ccatArgs([]).map((a) => `"${a}"`).join(" ")} "$@"; }`,
    `source "${statePath(work)}"`,
    `cd "${work}"`,
    body,
    ...(keepState ? [`export -p > "${statePath(work)}.next"`] : [])
  ].join("\n")

const runBlock = (work: string, body: string): Promise<Ran> =>
  new Promise((resolve) => {
    const child = spawn("bash", ["-c", script(work, body, true)], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c) => (stdout += c))
    child.stderr.on("data", (c) => (stderr += c))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** A block left running, with what it printed. */
interface Background {
  readonly step: string
  readonly child: ChildProcess
  readonly output: () => string
}

const startBlock = (work: string, step: string, body: string): Background => {
  // its own process group, so stopping it stops ccat and node beneath bash
  // not `exec`: that would skip the `ccat` function for a `ccat` on the PATH (an installed build)
  const child = spawn("bash", ["-c", script(work, body, false)], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" },
    detached: true
  })
  let out = ""
  child.stdout!.on("data", (c) => (out += c))
  child.stderr!.on("data", (c) => (out += c))
  return { step, child, output: () => out }
}

const stopAll = async (running: Array<Background>) => {
  for (const b of running.splice(0)) {
    if (b.child.exitCode !== null || b.child.pid === undefined) continue
    const exited = new Promise((r) => b.child.once("exit", r))
    process.kill(-b.child.pid, "SIGTERM")
    const timer = setTimeout(() => b.child.pid !== undefined && process.kill(-b.child.pid, "SIGKILL"), 20_000)
    await exited
    clearTimeout(timer)
  }
}

interface Services {
  readonly s3: Radosgw.Radosgw
  readonly sshd: Sshd.Sshd
  readonly knownHosts: string
  readonly work: string
  readonly database: string
  readonly env: Record<string, string>
}

let services: Services | undefined
const running: Array<Background> = []

const admin = async <A>(f: (c: pg.Client) => Promise<A>): Promise<A> => {
  const c = new pg.Client({ connectionString: Redacted.value(TestDatabase.adminUrl()) })
  await c.connect()
  try {
    return await f(c)
  } finally {
    await c.end()
  }
}

beforeAll(async () => {
  const [s3, sshd, work, port] = await Promise.all([Radosgw.start(), Sshd.start(), tempDir("ccat-guide-"), freePort()])
  const hostKey = (await fs.readFile(path.join(sshd.dir, "host_ed25519.pub"), "utf8")).trim().split(/\s+/).slice(0, 2).join(" ")
  const knownHosts = path.join(sshd.dir, "known_hosts")
  await fs.writeFile(knownHosts, `[${sshd.host}]:${sshd.port} ${hostKey}\n`)
  const database = `ccat_guide_${randomBytes(5).toString("hex")}`
  await admin(async (c) => {
    await c.query(`create database ${database}`)
    // the guide restores into this name; a run that crashed may have left it
    await c.query(`drop database if exists ccat_restored with (force)`)
  })
  const url = new URL(Redacted.value(TestDatabase.adminUrl()))
  url.pathname = `/${database}`
  const root = path.join(work, "srv")
  const env: Record<string, string> = {
    DATABASE_URL: url.toString(),
    CCAT_CONFIG: path.join(work, "etc", "ccat.yaml"),
    CCAT_ROOT: root,
    CCAT_PORT: String(port),
    CCAT_URL: `http://127.0.0.1:${port}`,
    CCAT_LOG_FORMAT: "pretty",
    BACKUP_DIR: path.join(work, "backups"),
    // production waits hours for a bundle to fill; the test's observation should not
    BUNDLE_MAX_WAIT: "3 seconds",
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: `ccat-guide-${randomBytes(4).toString("hex")}`,
    CCAT_S3_ACCESS_KEY_ID: s3.accessKeyId,
    CCAT_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    SSH_HOST: sshd.host,
    SSH_PORT: String(sshd.port),
    SSH_USER: sshd.user,
    SSH_KEY: sshd.identityFile,
    SSH_KNOWN_HOSTS: knownHosts
  }
  await fs.mkdir(path.dirname(env.CCAT_CONFIG!), { recursive: true })
  await fs.mkdir(env.BACKUP_DIR!, { recursive: true })
  for (const d of ["chile/source", "chile/buffer", "cologne/buffer", "cologne/processing"]) {
    await fs.mkdir(path.join(root, d), { recursive: true })
  }
  await fs.writeFile(statePath(work), Object.entries(env).map(([k, v]) => `export ${k}=${JSON.stringify(v)}`).join("\n") + "\n")
  services = { s3, sshd, knownHosts, work, database, env }
  console.log(`[operator guide] radosgw ${s3.endpoint}, sshd ${sshd.host}:${sshd.port}, database ${database}, work ${work}`)
}, 240_000)

afterAll(async () => {
  await stopAll(running)
  if (services === undefined) return
  const s = services
  await Promise.all([s.sshd.stop(), Radosgw.stop(s.s3.dir)])
  await admin(async (c) => {
    const dbs = await c.query<{ datname: string }>(`select datname from pg_database where datname like $1`, [`${s.database}%`])
    for (const d of dbs.rows) await c.query(`drop database if exists ${d.datname} with (force)`)
    await c.query(`drop database if exists ccat_restored with (force)`)
  })
  await fs.rm(s.work, { recursive: true, force: true })
}, 120_000)

/** The exported variables after the last block. */
const stateVar = async (name: string): Promise<string | undefined> => {
  const text = await fs.readFile(statePath(services!.work), "utf8")
  const m = new RegExp(`^declare -x ${name}="(.*)"$`, "m").exec(text) ?? new RegExp(`^export ${name}=(.*)$`, "m").exec(text)
  return m === null ? undefined : m[1]!.startsWith('"') ? JSON.parse(m[1]!) : m[1]
}

const getJson = async (pathname: string, token?: string) => {
  const r = await fetch(`${services!.env.CCAT_URL}${pathname}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
  })
  return { status: r.status, body: await r.text() }
}

/** What each step must have done, beyond its exit code. The keys are the guide's steps. */
const checks: Record<string, (r: Ran) => Promise<void> | void> = {
  "check-config": (r) => {
    assert.match(r.stdout, /ccat\.yaml: valid/)
    assert.match(r.stdout, /site chile \(cl, secondary\): chile-source SOURCE\/disk, chile-buffer BUFFER\/disk/)
    assert.match(
      r.stdout,
      /site cologne \(col, main\): cologne-buffer BUFFER\/disk, cologne-archive LONG_TERM_ARCHIVE\/s3, cologne-processing PROCESSING\/disk/
    )
    assert.match(r.stdout, /route chile -> cologne by rsync/)
  },
  migrate: (r) => assert.match(r.stdout, /applied 1_init/),
  "migrate-again": (r) => assert.match(r.stdout, /the ops-db is up to date/),
  "admin-token": async () => assert.match((await stateVar("CCAT_ADMIN_TOKEN")) ?? "", /^\S{20,}$/),
  "operator-token": async () => assert.match((await stateVar("CCAT_TOKEN")) ?? "", /^\S{20,}$/),
  serve: () => waitReady("serve"),
  "worker-chile": async () => waitForLog("worker-chile", /lifecycle workers running at site chile/),
  "worker-cologne": async () => waitForLog("worker-cologne", /lifecycle workers running at site cologne/),
  health: (r) => {
    const [anonymous, operator] = r.stdout.trim().split("\n")
    assert.notMatch(anonymous!, /"database"/, "anonymous callers are not told where the database is")
    assert.match(operator!, /"database":\{"kind":"(embedded|external)"/)
    assert.match(r.stdout, /"status"/)
    assert.match(r.stdout, /\{"ready":true\}/)
    const series = Number(r.stdout.trim().split("\n").at(-1))
    assert.isAbove(series, 10, "/metrics exports ccat_ series")
  },
  "register-instrument": async (r) => {
    assert.match(r.stdout, /Prime-Cam/)
    const instruments = await getJson("/api/v1/instruments", await stateVar("CCAT_ADMIN_TOKEN"))
    assert.include(instruments.body, "Prime-Cam")
  },
  "instrument-token": async () => assert.match((await stateVar("PRIMECAM_TOKEN")) ?? "", /^\S{20,}$/),
  "smoke-file": (r) => assert.match(r.stdout, /^completed\nsmoke\/[0-9a-f-]{36}\/test\.dat$/m),
  "smoke-archived": async (r) => {
    assert.match(r.stdout, /packages of [0-9a-f-]{36}: ARCHIVED$/m)
    // the archive copy is in the bucket, under the configured prefix
    const s = services!
    const client = new S3Client({
      endpoint: s.s3.endpoint,
      region: s.s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s.s3.accessKeyId, secretAccessKey: s.s3.secretAccessKey }
    })
    try {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: s.env.S3_BUCKET, Prefix: "raw/" }))
      assert.isAtLeast(listed.KeyCount ?? 0, 1, "the package is in the S3 archive")
    } finally {
      client.destroy()
    }
  },
  "smoke-show": (r) => {
    assert.match(r.stdout, /ARCHIVED/)
    assert.match(r.stdout, /cologne-archive/)
  },
  status: (r) => {
    assert.match(r.stdout, /CCAT Data Center status at /)
    assert.match(r.stdout, /chile-buffer/)
    assert.match(r.stdout, /chile -> cologne/)
  },
  "location-disable": (r) => assert.match(r.stdout, /^chile-buffer: read yes, write NO, delete yes$/m),
  "location-enable": (r) => assert.match(r.stdout, /^chile-buffer: read yes, write yes, delete yes$/m),
  "drill-file": (r) => assert.match(r.stdout, /^completed$/m),
  "drill-failed": async (r) => {
    assert.match((await stateVar("DRILL_PACKAGE")) ?? "", /^[0-9a-f-]{36}$/)
    assert.match(r.stdout, /RawDataPackage\s+[0-9a-f-]{36}\s+failed/)
    assert.match(r.stdout, /FAILED/)
  },
  "drill-retry": (r) => assert.match(r.stdout, /^RawDataPackage [0-9a-f-]{36}: failed -> pending$/m),
  "drill-archived": (r) => assert.match(r.stdout, /packages of [0-9a-f-]{36}: ARCHIVED$/m),
  "scientist-token": (r) => assert.match(r.stdout, /token \S+ for sci-jdoe \(scientist\)/),
  backup: async (r) => {
    assert.match(r.stdout, /backed up \d+ rows of \d+ tables at migration \d+_\w+ to .*\.ccat-backup/)
    const files = await fs.readdir(services!.env.BACKUP_DIR!)
    assert.strictEqual(files.filter((f) => f.endsWith(".ccat-backup")).length, 1)
  },
  "verify-backup": (r) => assert.match(r.stdout, /^valid: \d+ rows of \d+ tables/m),
  "stop-services": () => assert.strictEqual(running.length, 0),
  "restore-refused": (r) => assert.match(r.stderr, /not empty: table \w+ has rows; restore into a new database/),
  restore: (r) => {
    assert.match(r.stdout, /^restored \d+ rows of \d+ tables/m)
    assert.match(r.stdout, /the ops-db is up to date/)
  },
  "serve-restored": async () => {
    await waitReady("serve-restored")
    // the tokens of the old database work on the restored one, and its rows are there
    const instruments = await getJson("/api/v1/instruments", await stateVar("CCAT_TOKEN"))
    assert.strictEqual(instruments.status, 200, instruments.body)
    assert.include(instruments.body, "Prime-Cam")
    assert.strictEqual((await getJson("/api/v1/instruments", "not-a-token")).status, 401)
  }
}

/** Polls /api/v1/ready until the server of a background step answers, saying why it did not. */
const waitReady = async (step: string) => {
  const b = running.find((x) => x.step === step)!
  const url = `${services!.env.CCAT_URL}/api/v1/ready`
  let last = ""
  await waitUntil(
    `${url} to answer`,
    async () => {
      if (b.child.exitCode !== null) throw new Error(`${step} exited early:\n${b.output()}`)
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(10_000) })
        if (r.ok) return true
        last = `HTTP ${r.status}: ${await r.text()}`
      } catch (e) {
        const cause = (e as { cause?: { code?: string; message?: string } }).cause
        last = `${String(e)} (${cause?.code ?? ""} ${cause?.message ?? ""})`
      }
      return false
    },
    240_000,
    { detail: () => `last: ${last}\n${b.output()}` }
  )
}

const waitForLog = async (step: string, pattern: RegExp) => {
  const b = running.find((x) => x.step === step)!
  await waitUntil(
    `${step} to log ${pattern}`,
    () => {
      if (pattern.test(b.output())) return true
      if (b.child.exitCode !== null) throw new Error(`${step} exited early:\n${b.output()}`)
      return false
    },
    240_000,
    { detail: () => b.output() }
  )
}

describe("the operator guide", () => {
  it("marks every shell block, and every step it names has checks here", async () => {
    const blocks = parseGuide(await fs.readFile(guidePath, "utf8"))
    const steps = blocks.filter((b) => b.kind !== "skip" && b.kind !== "file").map((b) => b.step)
    assert.deepStrictEqual([...steps].sort(), Object.keys(checks).sort())
    assert.strictEqual(new Set(steps).size, steps.length, "step names are unique")
    assert.isTrue(blocks.some((b) => b.kind === "file" && b.target === "CCAT_CONFIG"))
  })

  it.live("runs, in order, against real PostgreSQL, radosgw, sshd and the ccat CLI", () =>
    Effect.promise(async () => {
      const s = services!
      for (const block of parseGuide(await fs.readFile(guidePath, "utf8"))) {
        const where = `docs/operator-guide.md:${block.line} (${block.step})`
        if (block.kind === "skip") continue
        if (block.kind === "file") {
          const target = s.env[block.target!]
          assert.isDefined(target, `${where}: no $${block.target}`)
          await fs.writeFile(target!, substitute(block.body, s.env) + "\n")
          continue
        }
        if (block.kind === "background") {
          running.push(startBlock(s.work, block.step, block.body))
          await checks[block.step]!({ code: null, stdout: "", stderr: "" })
          continue
        }
        if (block.kind === "stop") {
          for (const b of running) {
            assert.include(
              block.body,
              b.step.replace(/^worker-/, "ccat-worker@").replace(/^serve(-restored)?$/, "ccat-server"),
              `${where} stops ${b.step}`
            )
          }
          await stopAll(running)
          await checks[block.step]!({ code: 0, stdout: "", stderr: "" })
          continue
        }
        const ran = await runBlock(s.work, block.body)
        // what the servers and workers said, for a failure's message
        const logs = () => running.map((b) => `--- ${b.step} (last lines)\n${b.output().split("\n").slice(-40).join("\n")}`).join("\n")
        assert.strictEqual(ran.code, block.exit, `${where} exited ${ran.code}:\n${ran.stdout}\n${ran.stderr}\n${logs()}`)
        if (ran.code === 0) await fs.rename(`${statePath(s.work)}.next`, statePath(s.work))
        try {
          await checks[block.step]!(ran)
        } catch (e) {
          throw new Error(`${where}: ${(e as Error).message}\n--- stdout\n${ran.stdout}\n--- stderr\n${ran.stderr}\n${logs()}`, {
            cause: e
          })
        }
      }
    }), 900_000)
})
