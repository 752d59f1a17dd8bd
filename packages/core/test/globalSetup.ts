/**
 * Starts one real PostgreSQL for the whole test run (the embedded one, in a temporary folder)
 * unless `DATABASE_URL` names a server to use; each suite then makes its own database.
 */
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { startUnscoped } from "../src/node/EmbeddedDatabase.js"
import { adminUrlVariable } from "../src/testing/TestDatabase.js"

export default async function setup(): Promise<() => Promise<void>> {
  if (process.env.DATABASE_URL) {
    process.env[adminUrlVariable] = process.env.DATABASE_URL
    console.log("[ccat tests] PostgreSQL: external server from DATABASE_URL")
    return async () => {}
  }
  // A folder under the system temp dir, which the postgres OS user can reach when we are root.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-test-pg-"))
  await fs.chmod(dir, 0o755)
  const { db, stop } = await startUnscoped({ dataDir: path.join(dir, "data") })
  process.env[adminUrlVariable] = Redacted.value(db.adminUrl)
  console.log(`[ccat tests] PostgreSQL: embedded, port ${db.port}, ${dir}`)
  return async () => {
    await stop()
    await fs.rm(dir, { recursive: true, force: true })
  }
}
