/**
 * The incidents and their deliveries in the ops-db (migration 0016). An evaluation turns what
 * the conditions find into incidents in one statement per condition: a thing found with no open
 * incident opens one, an open incident whose thing is no longer found is resolved; an incident
 * held for its `for` queues one delivery per sink, its resolution one per sink it went to; each
 * opening and resolution is an event of the event log (`AlertIncident`); all in one transaction. A sender claims one sink at
 * a time by locking its row (`skip locked`: a second process takes another sink or none), takes
 * what is due for it, sends it as one message and records the outcome before it lets go, so no
 * delivery is sent twice by two processes, and one that failed waits for its backoff and is
 * tried again until the sink answers.
 */
import { Backoff } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Catalogue from "./Catalogue.js"
import * as Conditions from "./Conditions.js"

/** One incident as a sink is told about it. */
export interface Notification {
  readonly incidentId: string
  readonly sink: string
  readonly kind: "firing" | "resolved"
  readonly alertname: Catalogue.AlertName
  readonly severity: Catalogue.Severity
  readonly labels: Readonly<Record<string, string>>
  readonly summary: string
  readonly description: string
  readonly startedAt: Date
  readonly resolvedAt: Date | null
  /** Earlier failed tries of this delivery. */
  readonly attempts: number
}

/** What an evaluation changed. */
export interface Evaluation {
  readonly opened: ReadonlyArray<{ readonly alertname: string; readonly key: string }>
  readonly resolved: ReadonlyArray<{ readonly alertname: string; readonly key: string }>
  /** False when another process was evaluating at the same moment, and this one left it to it. */
  readonly ran: boolean
}

// One evaluation at a time across every process; the key is arbitrary and fixed.
const evaluationLock = 4_715_022_016

/**
 * Opens and resolves incidents from what every condition finds now, in one transaction; a
 * process that finds another evaluating leaves it to that one. An incident is told (a firing
 * delivery queued for every sink) once its condition has held for its `for`, as a Prometheus
 * rule's `for:`; an incident resolved before that is never told, and a resolution goes to the
 * sinks its incident went to.
 */
export const evaluate = (
  conditions: ReadonlyArray<readonly [Catalogue.AlertName, Conditions.Query]>,
  holdFor: Readonly<Record<string, number>>,
  sinks: ReadonlyArray<string>
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const [lock] = yield* sql<{ got: boolean }>`select pg_try_advisory_xact_lock(${evaluationLock}) as got`
        if (!lock.got) return { opened: [], resolved: [], ran: false } satisfies Evaluation
        yield* sql`insert into alert_sink (name) select unnest(${sinks}::text[]) on conflict do nothing`
        const opened: Array<{ alertname: string; key: string }> = []
        const resolved: Array<{ alertname: string; key: string }> = []
        for (const [name, query] of conditions) {
          const changes = yield* sql<{ change: "opened" | "resolved"; key: string }>`
            with firing as (${query(sql)}),
            opened as (
              insert into alert_incident (alertname, key, severity, labels, summary, description, started_at)
              select ${name}, f.key, f.severity, f.labels, f.summary, f.description, coalesce(f.started_at, now()) from firing f
              where not exists (select 1 from alert_incident i where i.key = f.key and i.resolved_at is null)
              on conflict (key) where resolved_at is null do nothing
              returning id, key, labels, severity, summary),
            resolved as (
              update alert_incident i set resolved_at = greatest(now(), i.opened_at)
              where i.alertname = ${name} and i.resolved_at is null and not exists (select 1 from firing f where f.key = i.key)
              returning id, key, labels, severity, summary),
            queued as (
              insert into alert_delivery (incident_id, sink, kind)
              select r.id, d.sink, 'resolved' from resolved r join alert_delivery d on d.incident_id = r.id and d.kind = 'firing'),
            logged as (
              insert into event_log (entity_kind, entity_id, from_state, to_state, actor, details)
              select 'AlertIncident', c.id, c.from_state, c.to_state, 'notifier',
                jsonb_build_object('alertname', ${name}::text, 'severity', c.severity, 'labels', c.labels, 'summary', c.summary)
              from (select id, null::text as from_state, 'open' as to_state, labels, severity, summary from opened
                    union all select id, 'open', 'resolved', labels, severity, summary from resolved) c)
            select 'opened' as change, key from opened union all select 'resolved', key from resolved`
          for (const c of changes) (c.change === "opened" ? opened : resolved).push({ alertname: name, key: c.key })
        }
        // Open incidents held long enough and not yet told: the open ones by name, few by nature.
        yield* sql`
          insert into alert_delivery (incident_id, sink, kind)
          select i.id, s.sink, 'firing'
          from alert_incident i cross join unnest(${sinks}::text[]) s(sink)
          where i.resolved_at is null
            and i.started_at <= now() - make_interval(secs => coalesce((${
              JSON.stringify(holdFor)
            }::jsonb ->> i.alertname)::float8, 0) / 1000)
            and not exists (select 1 from alert_delivery d where d.incident_id = i.id and d.kind = 'firing')
          on conflict do nothing`
        return { opened, resolved, ran: true } satisfies Evaluation
      })
    ))

/** How one sink sends and how often it may. */
export interface SinkPolicy {
  readonly name: string
  /** At most this many messages per window; what is due beyond waits for the next window. */
  readonly messages: number
  readonly perMs: number
  /** The most notifications one message carries. */
  readonly batch: number
  readonly retryInitialMs: number
  readonly retryMaxMs: number
}

/** What one delivery round did for a sink. */
export type Round =
  | { readonly outcome: "sent"; readonly notifications: ReadonlyArray<Notification> }
  | { readonly outcome: "failed"; readonly notifications: ReadonlyArray<Notification>; readonly error: string }
  | { readonly outcome: "idle" | "busy" | "rate-limited" }

/**
 * Takes what is due for one sink and hands it to `send` as one message, holding the sink's row
 * lock until the outcome is recorded. A resolution goes only with or after its incident. The
 * message counts against the sink's rate limit only when it was sent.
 */
export const deliver = <E>(
  policy: SinkPolicy,
  send: (notifications: ReadonlyArray<Notification>) => Effect.Effect<void, E>,
  describe: (e: E) => string
): Effect.Effect<Round, SqlError.SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const [sink] = yield* sql<{ windowOver: boolean; messagesInWindow: number }>`
          select (window_started_at <= now() - make_interval(secs => ${policy.perMs / 1000})) as window_over, messages_in_window
          from alert_sink where name = ${policy.name} for update skip locked`
        if (sink === undefined) return { outcome: "busy" } as Round
        if (sink.windowOver) {
          yield* sql`update alert_sink set window_started_at = now(), messages_in_window = 0 where name = ${policy.name}`
        } else if (sink.messagesInWindow >= policy.messages) {
          return { outcome: "rate-limited" } as Round
        }
        const due = yield* sql<Omit<Notification, "sink"> & { firingDelivered: boolean }>`
          select d.incident_id, d.kind, d.attempts, i.alertname, i.severity, i.labels, i.summary, i.description,
            i.started_at, i.resolved_at,
            exists (select 1 from alert_delivery f where f.incident_id = d.incident_id and f.sink = d.sink
                    and f.kind = 'firing' and f.delivered_at is not null) as firing_delivered
          from alert_delivery d join alert_incident i on i.id = d.incident_id
          where d.sink = ${policy.name} and d.delivered_at is null and d.due_at <= now()
          order by d.created_at, d.kind limit ${policy.batch}`
        const firing = new Set(due.filter((d) => d.kind === "firing").map((d) => d.incidentId))
        const batch: Array<Notification> = due
          .filter((d) => d.kind === "firing" || d.firingDelivered || firing.has(d.incidentId))
          .map(({ firingDelivered: _, ...d }) => ({ ...d, sink: policy.name }))
        if (batch.length === 0) return { outcome: "idle" } as Round
        const ids = batch.map((n) => n.incidentId)
        const kinds = batch.map((n) => n.kind)
        const keyed = sql`(d.incident_id, d.kind) in (select * from unnest(${ids}::uuid[], ${kinds}::text[]))`
        const result = yield* Effect.either(send(batch))
        if (result._tag === "Right") {
          yield* sql`update alert_delivery d set delivered_at = now(), attempts = d.attempts + 1, last_error = null
                     where d.sink = ${policy.name} and ${keyed}`
          yield* sql`update alert_sink set messages_in_window = messages_in_window + 1, last_sent_at = now() where name = ${policy.name}`
          return { outcome: "sent", notifications: batch } as Round
        }
        const error = describe(result.left).slice(0, 2000)
        // no jitter: the sink's rate limit already spreads its messages
        const backoff = { base: policy.retryInitialMs, cap: policy.retryMaxMs, jitter: Backoff.none }
        const waits = batch.map((n) => Duration.toMillis(Backoff.delayFor(backoff, n.attempts + 1, 0)))
        yield* sql`update alert_delivery d set attempts = d.attempts + 1, last_error = ${error},
                     due_at = now() + make_interval(secs => w.ms / 1000)
                   from unnest(${ids}::uuid[], ${kinds}::text[], ${waits}::float8[]) as w(incident_id, kind, ms)
                   where d.sink = ${policy.name} and d.incident_id = w.incident_id and d.kind = w.kind`
        return { outcome: "failed", notifications: batch, error } as Round
      })
    ))
