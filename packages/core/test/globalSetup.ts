/**
 * Starts one real PostgreSQL for the whole test run (the embedded one, in a temporary folder)
 * unless `DATABASE_URL` names a server to use, and migrates one database there that each suite
 * copies for its own ops-db (`TestDatabase.migratedDatabase`).
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { startUnscoped } from "../src/node/EmbeddedDatabase.js"
import { adminUrlVariable, dropTemplate, makeTemplate, templateVariable } from "../src/testing/TestDatabase.js"

/** Migrates the run's template on the server now in `adminUrlVariable`; the result drops it. */
const withTemplate = async (): Promise<() => Promise<void>> => {
  const name = `ccat_test_template_${randomBytes(6).toString("hex")}`
  await Effect.runPromise(makeTemplate(name))
  process.env[templateVariable] = name
  return () => Effect.runPromise(Effect.ignore(dropTemplate(name)))
}

export default async function setup(): Promise<() => Promise<void>> {
  if (process.env.DATABASE_URL) {
    process.env[adminUrlVariable] = process.env.DATABASE_URL
    console.log("[ccat tests] PostgreSQL: external server from DATABASE_URL")
    return await withTemplate()
  }
  // A folder under the system temp dir, which the postgres OS user can reach when we are root.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-test-pg-"))
  await fs.chmod(dir, 0o755)
  // A throwaway cluster: a commit need not wait for its WAL to reach the disk (PostgreSQL still
  // never loses consistency; only a crash of the server itself, which no test causes, would lose
  // the last commits). Under load a commit then costs a third to a quarter.
  const { db, stop } = await startUnscoped({ dataDir: path.join(dir, "data"), settings: { synchronous_commit: "off" } })
  process.env[adminUrlVariable] = Redacted.value(db.adminUrl)
  console.log(`[ccat tests] PostgreSQL: embedded, port ${db.port}, ${dir}`)
  const dropTheTemplate = await withTemplate()
  return async () => {
    await dropTheTemplate()
    await stop()
    await fs.rm(dir, { recursive: true, force: true })
  }
}
