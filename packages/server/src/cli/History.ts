/**
 * An item's event-log history (`GET /events`), as the `show` commands print it: every state
 * change with when, who and the details the lifecycle recorded (errors, attempts, jobs).
 */
import type { CcatClient } from "@ccat/client"
import type { EventLog } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

/** The events of one item, oldest first, up to `limit`. */
export const of = (c: CcatClient.Client, entity: EventLog.EntityKind, id: string, limit: number) =>
  Effect.map(
    Remote.collect(limit, (page) => c.status.events({ urlParams: { entity, id, ...page } })),
    (r) => r.items
  )

/** The events as a table. */
export const table = (events: ReadonlyArray<typeof EventLog.EventLogEntry.json.Type>): string =>
  events.length === 0
    ? "  none"
    : Output.table(["AT", "FROM", "TO", "BY", "DETAILS"], events.map((e) => [
      Output.instant(e.at), e.fromState ?? "-", e.toState, e.actor, Object.keys(e.details).length === 0 ? "" : Output.cut(JSON.stringify(e.details), 100)
    ]))
