/**
 * Access changes in the append-only event log: who created, disabled or enabled an account, gave
 * or took back a grant, issued or revoked a token. Written by the statement's caller inside the
 * transaction that makes the change, so the log never shows a change that did not happen nor
 * misses one that did.
 */
import { EventLog } from "@ccat/core"
import * as os from "node:os"

/** One access event: `to` is one of `EventLog.accessEvents[kind]`. */
export const record = <K extends keyof typeof EventLog.accessEvents>(input: {
  readonly kind: K
  readonly id: string
  readonly from: (typeof EventLog.accessEvents)[K][number] | null
  readonly to: (typeof EventLog.accessEvents)[K][number]
  readonly actor: string
  readonly details?: Record<string, unknown>
}) => EventLog.append(input)

/** Who ran a local `ccat` command, as events name them: the operating-system user at this host. */
export const cliActor = (): string => {
  try {
    return `cli:${process.env.SUDO_USER ?? os.userInfo().username}`
  } catch {
    // a uid with no passwd entry (a container) still gets a name
    return `cli:uid-${process.getuid?.() ?? "unknown"}`
  }
}
