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
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import { guidePath, parseGuide, substitute } from "./OperatorGuideBlocks.js"
import * as Shell from "./OperatorGuideShell.js"
import { type Background, type Ran, runBlock, startBlock, statePath, stopAll } from "./OperatorGuideShell.js"
import * as OperatorGuideWorld from "./OperatorGuideWorld.js"

let services: OperatorGuideWorld.Services | undefined
const running: Array<Background> = []

beforeAll(async () => {
  services = await OperatorGuideWorld.start()
}, 240_000)

afterAll(async () => {
  await stopAll(running)
  if (services !== undefined) await OperatorGuideWorld.stop(services)
}, 120_000)

/** The exported variables after the last block. */
const stateVar = (name: string) => Shell.stateVar(services!.work, name)

const getJson = (pathname: string, token?: string) => OperatorGuideWorld.getJson(services!, pathname, token)

/** The block of `step` left running. */
const background = (step: string) => running.find((x) => x.step === step)!

const waitReady = (step: string) => Shell.waitReady(background(step), services!.env.CCAT_URL!)

const waitForLog = (step: string, pattern: RegExp) => Shell.waitForLog(background(step), pattern)

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
