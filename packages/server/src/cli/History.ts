/**
 * An item's event-log history (`GET /events`), as the `show` commands print it and as `ccat
 * events --entity KIND:ID` prints it for anything the log records: every state change, access
 * change and configuration change with when, who and the details (errors, attempts, reasons).
 */
import type { CcatClient } from "@ccat/client"
import { EventLog } from "@ccat/core"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

/** The events of one item, oldest first, up to `limit`. */
export const of = (c: CcatClient.Client, entity: EventLog.LoggedEntityKind, id: string, limit: number) =>
  Effect.map(
    Remote.collect(limit, (page) => c.status.events({ urlParams: { entity, id, ...page } })),
    (r) => r.items
  )

/** The events as a table. */
export const table = (events: ReadonlyArray<typeof EventLog.EventLogEntry.json.Type>): string =>
  events.length === 0
    ? "  none"
    : Output.table(
      ["AT", "FROM", "TO", "BY", "DETAILS"],
      events.map((e) => [
        Output.instant(e.at),
        e.fromState ?? "-",
        e.toState,
        e.actor,
        Object.keys(e.details).length === 0 ? "" : Output.cut(JSON.stringify(e.details), 100)
      ])
    )

/** The short words an operator types for each kind the log records (the kinds' own names work too). */
export const kindWords: Readonly<Record<string, EventLog.LoggedEntityKind>> = {
  observation: "ExecutedObsUnit",
  file: "RawDataFile",
  package: "RawDataPackage",
  bundle: "DataTransferPackage",
  transfer: "DataTransfer",
  attempt: "DataTransfer",
  copy: "PhysicalCopy",
  staging: "StagingRequest",
  account: "Account",
  token: "ApiToken",
  site: "Site",
  location: "DataLocation",
  route: "Route",
  incident: "AlertIncident"
}

/** The kind a word names, by its short word or its own name, whatever the case. */
export const kindOf = (word: string): EventLog.LoggedEntityKind | undefined =>
  kindWords[word.toLowerCase()] ?? EventLog.LoggedEntityKind.literals.find((k) => k.toLowerCase() === word.toLowerCase())

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * The id `ref` stands for: a UUID as given, or for a location, site or account its name (what
 * an operator knows them by), looked up on the server.
 */
const resolveId = (o: Remote.Remote, kind: EventLog.LoggedEntityKind, ref: string) =>
  Effect.gen(function* () {
    if (uuidPattern.test(ref)) return ref.toLowerCase()
    const named = yield* Remote.withClient(
      o,
      (c): Effect.Effect<ReadonlyArray<{ readonly id: string; readonly name: string }> | undefined, unknown> => {
        switch (kind) {
          case "DataLocation":
            return c.locations.list({ urlParams: {} })
          case "Site":
            return c.locations.listSites()
          case "Account":
            return c.admin.listAccounts()
          default:
            return Effect.succeed(undefined)
        }
      }
    )
    if (named === undefined) {
      return yield* Remote.usage(o.json, `--entity: ${JSON.stringify(ref)} is not a UUID; a ${kind} is named by its id`)
    }
    const found = named.find((n) => n.name === ref)
    if (found !== undefined) return found.id
    return yield* new Remote.CliError({
      exitCode: 3,
      kind: "NotFound",
      json: o.json,
      message: `no ${kind} named ${JSON.stringify(ref)}; known: ${named.map((n) => n.name).join(", ") || "none"}`
    })
  })

const Listed = Schema.Struct({ entity: EventLog.LoggedEntityKind, id: Schema.String, events: Schema.Array(EventLog.EventLogEntry.json) })

/** `ccat events --entity KIND:ID`. */
export const command = Command.make(
  "events",
  {
    ...Remote.options,
    entity: Options.text("entity").pipe(Options.withDescription(
      `what to show the history of, as KIND:ID; KIND is one of ${Object.keys(kindWords).join(", ")} (or the entity's own name); ` +
        "a location, site or account may be named instead of its id"
    )),
    limit: Remote.limitOption
  },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const colon = o.entity.indexOf(":")
      if (colon <= 0 || colon === o.entity.length - 1) {
        return yield* Remote.usage(o.json, `--entity must be KIND:ID (for example package:3f2c9a4e-...), not ${JSON.stringify(o.entity)}`)
      }
      const kind = kindOf(o.entity.slice(0, colon))
      if (kind === undefined) {
        return yield* Remote.usage(
          o.json,
          `--entity: unknown kind ${JSON.stringify(o.entity.slice(0, colon))}; one of ${Object.keys(kindWords).join(", ")}`
        )
      }
      const id = yield* resolveId(o, kind, o.entity.slice(colon + 1))
      const events = yield* Remote.withClient(o, (c) => of(c, kind, id, limit))
      if (o.json) return yield* Remote.printJson(Listed, { entity: kind, id, events })
      yield* Console.log(`${kind} ${id}: ${events.length} event${events.length === 1 ? "" : "s"}, oldest first`)
      yield* Console.log(table(events))
    })
).pipe(Command.withDescription("the event-log history of one item: every state, access or configuration change, who made it and why"))
