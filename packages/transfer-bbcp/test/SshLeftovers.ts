/**
 * What an ssh connection kept by `SshMux` can leave behind in this test process: its private
 * socket folders and master processes, and a bounded wait for them to go.
 */
import { SshMux } from "@ccat/transfer-bbcp"
import * as fs from "node:fs/promises"
import * as os from "node:os"

/** This process's socket folders, and the processes whose command line names one. */
export const leftovers = async () => {
  const prefix = `${SshMux.folderPrefix}${process.pid}-`
  const folders = (await fs.readdir(os.tmpdir())).filter((n) => n.startsWith(prefix))
  const masters: Array<string> = []
  for (const pid of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    const cmd = await fs.readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")
    if (cmd.includes(prefix)) masters.push(`${pid}: ${cmd.replace(/\0/g, " ")}`)
  }
  return { folders, masters }
}

/** Waits, at most `ms`, until `check` holds; polls every 50 ms. */
export const until = async (check: () => Promise<boolean>, ms: number): Promise<boolean> => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return check()
}
