/** The server's version, read from its package.json so that a changeset release updates it. */
import { readFileSync } from "node:fs"

/** The version of @ccat/server that is running. */
export const version: string = (() => {
  try {
    // src/ and dist/ both sit beside package.json.
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version
  } catch {
    return "unknown"
  }
})()
