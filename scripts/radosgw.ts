/**
 * A throwaway single-node Ceph cluster with radosgw on loopback, for tests and benchmarks that
 * need a real S3-compatible server. One monitor, one memory-backed OSD (memstore), auth off,
 * messenger in crc mode (radosgw fails with -13 otherwise), everything under one folder.
 *
 *   npx tsx scripts/radosgw.ts start [dir]   # prints CCAT_S3_* lines for `eval`
 *   npx tsx scripts/radosgw.ts stop dir
 *
 * Tests call `start()` and `stop()` directly; `isInstalled()` tells them whether to fall back to
 * an emulator.
 */
import { execFile as execFileCb, spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { LoopbackPort } from "@ccat/core/node"

const execFile = promisify(execFileCb)

/** A running radosgw and how to reach it. */
export interface Radosgw {
  readonly endpoint: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly region: string
  /** The cluster folder (config, logs, pid files). */
  readonly dir: string
  /** What ran, for test output: "radosgw 16.2.15 (Ceph, memstore)". */
  readonly server: string
}

/** True when the Debian packages radosgw, ceph-mon and ceph-osd are installed. */
export const isInstalled = (): boolean =>
  ["radosgw", "ceph-mon", "ceph-osd", "monmaptool", "radosgw-admin", "ceph"].every(
    (bin) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0
  )

const run = async (dir: string, cmd: string, args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<string> => {
  try {
    const { stdout } = await execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new Error(`radosgw setup: ${cmd} ${args.join(" ")} failed: ${err.stderr ?? ""} ${err.message} (logs in ${dir}/log)`, { cause: e })
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const config = (dir: string, fsid: string, monPort: number, rgwPort: number, memBytes: number) => `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
auth supported = none
ms cluster mode = crc
ms service mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
ms mon client mode = crc
ms bind ipv4 = true
ms bind ipv6 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
osd objectstore = memstore
memstore device bytes = ${memBytes}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon max pg per osd = 1000
run dir = ${dir}/run
log file = ${dir}/log/$name.log
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
keyring = /dev/null
debug ms = 0
[client.rgw.ccat]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
rgw data = ${dir}/rgw
rgw dns name = 127.0.0.1
rgw thread pool size = 64
rgw max chunk size = 4194304
# overwritten and deleted objects go to garbage collection; reclaim them within seconds, not
# hours, or a memory-backed OSD grows with every overwrite
rgw gc obj min wait = 1
rgw gc processor period = 5
rgw gc processor max time = 5
`

const waitForHttp = async (url: string, deadline: number, dir: string): Promise<void> => {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      return
    } catch {
      await sleep(250)
    }
  }
  throw new Error(`radosgw did not answer on ${url} in time (logs in ${dir}/log)`)
}

/**
 * Starts a fresh cluster in `dir` (a new temporary folder by default) and returns its endpoint.
 * `memoryBytes` bounds what the memory-backed OSD may hold.
 */
export const start = async (
  options: { readonly dir?: string; readonly memoryBytes?: number; readonly timeoutMs?: number } = {}
): Promise<Radosgw> => {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "ccat-radosgw-")))
  for (const sub of ["run", "log", "mon", "osd", "rgw"]) await mkdir(join(dir, sub), { recursive: true })
  const fsid = randomUUID()
  const monPort = await LoopbackPort.freePort()
  let rgwPort = await LoopbackPort.freePort()
  // Two random choices, neither held: they may meet.
  while (rgwPort === monPort) rgwPort = await LoopbackPort.freePort()
  const conf = join(dir, "ceph.conf")
  await writeFile(conf, config(dir, fsid, monPort, rgwPort, options.memoryBytes ?? 12 * 1024 ** 3))
  const c = ["-c", conf]
  const asRoot = ["--setuser", "root", "--setgroup", "root"]
  const deadline = Date.now() + (options.timeoutMs ?? 90_000)
  try {
    await run(dir, "monmaptool", ["--create", "--addv", "a", `[v2:127.0.0.1:${monPort}]`, "--fsid", fsid, join(dir, "monmap")])
    await run(dir, "ceph-mon", [...c, "--mkfs", "-i", "a", "--monmap", join(dir, "monmap"), ...asRoot])
    await run(dir, "ceph-mon", [...c, "-i", "a", ...asRoot])
    const osdUuid = randomUUID()
    const osdId = (await run(dir, "ceph", [...c, "osd", "create", osdUuid], 60_000)).trim()
    await mkdir(join(dir, "osd", `ceph-${osdId}`), { recursive: true })
    await run(dir, "ceph-osd", [...c, "-i", osdId, "--mkfs", "--osd-uuid", osdUuid, ...asRoot])
    await run(dir, "ceph-osd", [...c, "-i", osdId, ...asRoot])
    await run(dir, "radosgw", [...c, "-n", "client.rgw.ccat", ...asRoot])
    await waitForHttp(`http://127.0.0.1:${rgwPort}/`, deadline, dir)
    const accessKeyId = "CCATTESTACCESSKEY"
    const secretAccessKey = "ccat-test-secret-key-not-a-secret"
    await run(dir, "radosgw-admin", [
      ...c,
      "-n",
      "client.rgw.ccat",
      "user",
      "create",
      "--uid=ccat",
      "--display-name=ccat",
      `--access-key=${accessKeyId}`,
      `--secret=${secretAccessKey}`
    ])
    return {
      endpoint: `http://127.0.0.1:${rgwPort}`,
      accessKeyId,
      secretAccessKey,
      region: "us-east-1",
      dir,
      server: "radosgw 16.2.15 (Ceph, single node, memstore OSD)"
    }
  } catch (e) {
    if (process.env.CCAT_RADOSGW_DEBUG === undefined) await stop(dir, { keep: true })
    throw e
  }
}

/** Stops every daemon of the cluster in `dir` (by their pid files) and removes the folder. */
export const stop = async (dir: string, options: { readonly keep?: boolean } = {}): Promise<void> => {
  const runDir = join(dir, "run")
  const pids: Array<number> = []
  if (existsSync(runDir)) {
    for (const f of await readdir(runDir)) {
      if (!f.endsWith(".pid")) continue
      const pid = Number((await readFile(join(runDir, f), "utf8")).trim())
      if (Number.isInteger(pid) && pid > 0) pids.push(pid)
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM")
    } catch {
      // already gone
    }
  }
  const until = Date.now() + 10_000
  for (const pid of pids) {
    while (Date.now() < until) {
      try {
        process.kill(pid, 0)
        await sleep(100)
      } catch {
        break
      }
    }
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  if (options.keep !== true) await rm(dir, { recursive: true, force: true })
}

const main = async () => {
  const [cmd, dir] = process.argv.slice(2)
  if (cmd === "start") {
    const gw = await start(dir === undefined ? {} : { dir })
    process.stdout.write(
      `CCAT_S3_ENDPOINT=${gw.endpoint}\nCCAT_S3_ACCESS_KEY_ID=${gw.accessKeyId}\nCCAT_S3_SECRET_ACCESS_KEY=${gw.secretAccessKey}\nCCAT_S3_REGION=${gw.region}\nCCAT_RADOSGW_DIR=${gw.dir}\n`
    )
  } else if (cmd === "stop" && dir !== undefined) {
    await stop(dir)
  } else {
    process.stderr.write("usage: radosgw.ts start [dir] | stop dir\n")
    process.exit(2)
  }
}

if (process.argv[1] !== undefined && /radosgw\.ts$/.test(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(1)
  })
}
