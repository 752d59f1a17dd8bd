/**
 * The services docs/operator-guide.md is run against: a real radosgw (the archive's S3), a real
 * sshd (the rsync route's far end), an empty database on the test cluster, and a work folder
 * holding the guide's tree of site folders and the variables its blocks start from.
 */
import { TestDatabase } from "@ccat/core/testing"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import pg from "pg"
import * as Radosgw from "../../../scripts/radosgw.js"
import * as Sshd from "../../../scripts/sshd.js"
import { statePath } from "./OperatorGuideShell.js"
import { freePort, tempDir } from "./support.js"

/** What the guide runs against, and the variables its blocks see first. */
export interface Services {
  readonly s3: Radosgw.Radosgw
  readonly sshd: Sshd.Sshd
  readonly knownHosts: string
  readonly work: string
  readonly database: string
  readonly env: Record<string, string>
}

/** Runs `f` on the test cluster's admin connection. */
const admin = async <A>(f: (c: pg.Client) => Promise<A>): Promise<A> => {
  const c = new pg.Client({ connectionString: Redacted.value(TestDatabase.adminUrl()) })
  await c.connect()
  try {
    return await f(c)
  } finally {
    await c.end()
  }
}

/** Starts radosgw and sshd, makes the database and the work folder, and writes the first variables. */
export const start = async (): Promise<Services> => {
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
  const services = { s3, sshd, knownHosts, work, database, env }
  console.log(`[operator guide] radosgw ${s3.endpoint}, sshd ${sshd.host}:${sshd.port}, database ${database}, work ${work}`)
  return services
}

/** Stops radosgw and sshd, drops the guide's databases (the restored one too) and removes the work folder. */
export const stop = async (s: Services): Promise<void> => {
  await Promise.all([s.sshd.stop(), Radosgw.stop(s.s3.dir)])
  await admin(async (c) => {
    const dbs = await c.query<{ datname: string }>(`select datname from pg_database where datname like $1`, [`${s.database}%`])
    for (const d of dbs.rows) await c.query(`drop database if exists ${d.datname} with (force)`)
    await c.query(`drop database if exists ccat_restored with (force)`)
  })
  await fs.rm(s.work, { recursive: true, force: true })
}

/** A GET on the guide's server, with a token or none: its status and body. */
export const getJson = async (s: Services, pathname: string, token?: string) => {
  const r = await fetch(`${s.env.CCAT_URL}${pathname}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
  })
  return { status: r.status, body: await r.text() }
}
