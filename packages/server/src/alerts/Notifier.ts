/**
 * The built-in notifier, for sites without Prometheus: every `interval` it evaluates the
 * catalogue's conditions against the ops-db, opening and resolving incidents, and then hands each
 * sink what is due for it. `ccat serve` runs it when ccat.yaml has a `notifications:` section.
 * Any number of server processes may run it: incidents and deliveries are claimed in the ops-db,
 * so each incident and each resolution reaches each sink once.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Option from "effect/Option"
import { LocationAudits } from "../lifecycle/Audit.js"
import { LifecyclePolicy } from "../lifecycle/Packaging.js"
import * as Routes from "../lifecycle/Routes.js"
import * as Conditions from "./Conditions.js"
import * as Incidents from "./Incidents.js"
import type { NotifierConfig } from "./NotifierConfig.js"
import * as Sinks from "./Sinks.js"

/** The most notifications one message carries; a larger backlog goes out in several. */
export const batchSize = 500

/** The most messages one round sends to a sink before the next evaluation (a backlog drains over rounds). */
const roundsPerSink = 10

/** What one pass did: the evaluation, and each sink's rounds. */
export interface Pass {
  readonly evaluation: Incidents.Evaluation
  readonly rounds: ReadonlyArray<{ readonly sink: string; readonly round: Incidents.Round }>
}

const policyOf = (config: NotifierConfig, sink: NotifierConfig["sinks"][number]): Incidents.SinkPolicy => ({
  name: sink.name,
  messages: sink.rateLimit.messages,
  perMs: sink.rateLimit.per,
  batch: batchSize,
  retryInitialMs: config.retry.initial,
  retryMaxMs: config.retry.max
})

/** The notifier of one configuration: `pass` evaluates once and delivers what is due. */
export const make = (config: NotifierConfig) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const sinks = config.sinks.map((s) => ({ sink: Sinks.make(s, client), policy: policyOf(config, s) }))
    const names = config.sinks.map((s) => s.name)

    const deliverTo = Effect.fn("Notifier.deliver")(function* (s: (typeof sinks)[number]) {
      const rounds: Array<{ sink: string; round: Incidents.Round }> = []
      for (let i = 0; i < roundsPerSink; i++) {
        const round = yield* Incidents.deliver(s.policy, s.sink.send, (e) => e.message)
        rounds.push({ sink: s.sink.name, round })
        if (round.outcome === "sent") {
          yield* Effect.logInfo(
            `notified ${s.sink.name}: ${round.notifications.map((n) => `${n.kind} ${n.alertname} ${n.incidentId}`).join(", ")}`
          )
        } else if (round.outcome === "failed") {
          yield* Effect.logWarning(`cannot notify ${s.sink.name} (${round.notifications.length} due, tried again later): ${round.error}`)
        }
        if (round.outcome !== "sent") break
      }
      return rounds
    })

    const pass: Effect.Effect<Pass, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
      const lifecycle = yield* Effect.serviceOption(LifecyclePolicy)
      const settings: Conditions.Settings = {
        conditions: config.conditions,
        policy: Option.getOrUndefined(lifecycle),
        audits: yield* LocationAudits,
        breakerThreshold: (yield* Routes.transferPolicy).breakerThreshold
      }
      const findings = yield* Conditions.figureFindings(settings)
      const queries = [
        ...Conditions.itemQueries,
        ...[...findings].map(([name, f]) => [name, Conditions.findingsQuery(name, f)] as const)
      ]
      const evaluation = yield* Incidents.evaluate(queries, config.conditions.for, names)
      for (const o of evaluation.opened) yield* Effect.logWarning(`incident opened: ${o.alertname} ${o.key}`)
      for (const r of evaluation.resolved) yield* Effect.logInfo(`incident resolved: ${r.alertname} ${r.key}`)
      const rounds = yield* Effect.forEach(sinks, deliverTo, { concurrency: "unbounded" })
      return { evaluation, rounds: rounds.flat() }
    }).pipe(Effect.withSpan("Notifier.pass"))

    return { pass }
  })

/**
 * Runs the notifier every `interval` for as long as the layer lives. A pass that fails (the
 * ops-db away for a moment) is logged and the next one tries again; nothing is lost, since the
 * incidents and deliveries live in the ops-db.
 */
export const layer = (config: NotifierConfig) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const notifier = yield* make(config)
      yield* Effect.logInfo(`notifier: ${config.sinks.map((s) => `${s.name} (${s.type})`).join(", ")}, every ${config.interval} ms`)
      yield* notifier.pass.pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("notifier pass failed; the next one tries again", cause)),
        Effect.repeat(Schedule.spaced(config.interval)),
        Effect.forkScoped
      )
    })
  ).pipe(Layer.provide(FetchHttpClient.layer))

/** The notifier when the configuration has a `notifications:` section, else nothing. */
export const layerOf = (config: NotifierConfig | undefined): Layer.Layer<never, never, SqlClient.SqlClient> =>
  config === undefined ? Layer.empty : layer(config)
