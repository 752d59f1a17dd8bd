/**
 * `ccat relay`: runs the telescope-side relay (docs/relay.md); `ccat relay status` shows a
 * running relay's backlog, the age of its reference data, and the filings the main refused
 * with the main's reasons (exit 0 when none was refused, 4 when some were, so a cron job can
 * alert on it; 1 when the relay cannot be reached, 3 when it refuses the token).
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { RelayApi, RelayStatus } from "../relay/RelayApi.js"
import * as Output from "./Output.js"
import { CliError } from "./Remote.js"

const mainOption = Options.text("main").pipe(
  Options.withDescription("the main server's base URL, e.g. https://ccat-dc.example.org (default: $CCAT_RELAY_MAIN_URL)"),
  Options.optional
)
const portOption = Options.integer("port").pipe(
  Options.withDescription("the port the relay listens on (default: $CCAT_RELAY_PORT, else 8081)"),
  Options.optional
)
const dataDirOption = Options.text("data-dir").pipe(
  Options.withDescription(
    "folder of the relay's embedded PostgreSQL (default: $CCAT_DATA_DIR, else .ccat-relay); not used with $CCAT_RELAY_DATABASE_URL"
  ),
  Options.optional
)

const run = Command.make("relay", { main: mainOption, port: portOption, dataDir: dataDirOption }, (o) =>
  // the relay (its server, store and forwarder) loads only when it runs, not for `relay status`
  Effect.flatMap(
    Effect.promise(() => import("../relay/Relay.js")),
    (Relay) =>
      Relay.run({ mainUrl: Option.getOrUndefined(o.main), port: Option.getOrUndefined(o.port), dataDir: Option.getOrUndefined(o.dataDir) })
  ))

/** The status as people read it. */
export const render = (s: RelayStatus): string => {
  const b = s.backlog
  const out = [
    `relay forwarding to ${s.main}`,
    `backlog: ${b.pending} pending${
      b.pending > 0 ? ` (oldest ${Output.duration(b.oldestPendingAgeSeconds * 1000)})` : ""
    }, ${b.forwarded} forwarded, ${b.refused} refused`,
    ...(b.lastError === null ? [] : [`last forwarding error: ${Output.cut(b.lastError, 200)}`]),
    `reference data: ${
      s.reference.pulledAt === null ? "from the store (not pulled since the relay started)" : `pulled ${s.reference.pulledAt}`
    }` +
    (s.reference.lastSyncError === null ? "" : `; last sync failed: ${Output.cut(s.reference.lastSyncError, 200)}`)
  ]
  if (s.refused.length > 0) {
    out.push("", "Refused by the main (kept here; fix and file again, see docs/relay.md)")
    out.push(Output.table(
      ["FILING", "KIND", "OBSERVATION", "BY", "REFUSED", "STATUS", "REASON"],
      s.refused.map((f) => [
        f.id,
        f.kind,
        f.observationId,
        f.accountName,
        f.refusedAt,
        String(f.status ?? "-"),
        Output.cut(f.reason, 120)
      ])
    ))
  }
  return out.join("\n")
}

const status = Command.make(
  "status",
  {
    url: Options.text("url").pipe(
      Options.withFallbackConfig(Config.string("CCAT_RELAY_URL")),
      Options.withDefault("http://127.0.0.1:8081"),
      Options.withDescription("the relay's base URL (default: $CCAT_RELAY_URL, else http://127.0.0.1:8081)")
    ),
    token: Options.redacted("token").pipe(
      Options.withFallbackConfig(Config.redacted("CCAT_TOKEN")),
      Options.withDescription("an API token the relay knows (default: $CCAT_TOKEN)")
    ),
    json: Options.boolean("json").pipe(Options.withDescription("print the relay's answer as JSON"))
  },
  (o) =>
    Effect.gen(function* () {
      const client = yield* HttpApiClient.make(RelayApi, {
        baseUrl: o.url.replace(/\/+$/, ""),
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(o.token)))
      })
      const s = yield* client.relay.status().pipe(
        Effect.mapError((e) => {
          const tag = Predicate.hasProperty(e, "_tag") ? String(e._tag) : "Error"
          const refused = tag === "Unauthorized" || tag === "Forbidden"
          return new CliError({
            exitCode: refused ? 3 : 1,
            kind: refused ? tag : "Unreachable",
            json: o.json,
            message: `relay at ${o.url}: ${e.message}`
          })
        })
      )
      yield* o.json ? Console.log(JSON.stringify(Schema.encodeSync(RelayStatus)(s), null, 2)) : Console.log(render(s))
      if (s.backlog.refused > 0) process.exitCode = 4
    }).pipe(Effect.provide(FetchHttpClient.layer))
).pipe(Command.withDescription("show a running relay's backlog and the filings the main refused (exit 4 when there are refused filings)"))

/** `ccat relay` and `ccat relay status`. */
export const command = run.pipe(
  Command.withDescription(
    "run the telescope-side relay: instruments file through it (same API, another base URL) while the link to the main is down; " +
      "it checks filings against reference data synced from the main, stores them durably and forwards them in order, exactly once. " +
      "Needs CCAT_RELAY_TOKEN (an admin token of the main)"
  ),
  Command.withSubcommands([status])
)
