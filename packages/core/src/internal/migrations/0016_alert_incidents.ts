/**
 * The built-in notifier's record (docs/alerts.md). `alert_incident` holds one row per incident:
 * a condition that began to hold for one thing (a FAILED package, a route's open circuit), open
 * until the condition stops holding, then resolved; at most one open incident per key, so an
 * evaluation that runs twice, or in two processes, opens it once. `alert_delivery` holds what
 * each sink must be told (the incident, then its resolution) and whether it was: a sender claims
 * rows under a row lock, so a restart or a second process never sends one twice, and a sink that
 * is down keeps its rows until it answers. `alert_sink` is each sink's rate-limit window, locked
 * by the one process delivering to that sink at a time. Incidents join the event log as
 * `AlertIncident` (opened, resolved); the enum value is usable once this migration commits.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
alter type entity_kind add value if not exists 'AlertIncident';

create table alert_incident (
  id uuid primary key default gen_random_uuid(),
  alertname text not null check (alertname ~ '^Ccat[A-Za-z]+$'),
  key text not null check (key <> ''),
  severity text not null check (severity in ('critical', 'warning', 'info')),
  labels json_map not null default '{}',
  summary text not null,
  description text not null default '',
  started_at timestamptz not null,
  opened_at timestamptz not null default now(),
  resolved_at timestamptz,
  check (resolved_at is null or resolved_at >= opened_at)
);
create unique index alert_incident_open on alert_incident (key) where resolved_at is null;
create index alert_incident_open_by_name on alert_incident (alertname) where resolved_at is null;
create index alert_incident_page on alert_incident (opened_at, id);

create table alert_delivery (
  incident_id uuid not null references alert_incident (id),
  sink text not null check (sink <> ''),
  kind text not null check (kind in ('firing', 'resolved')),
  created_at timestamptz not null default now(),
  due_at timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  last_error text,
  delivered_at timestamptz,
  primary key (incident_id, sink, kind)
);
create index alert_delivery_due on alert_delivery (sink, due_at) where delivered_at is null;

create table alert_sink (
  name text primary key check (name <> ''),
  window_started_at timestamptz not null default now(),
  messages_in_window integer not null default 0 check (messages_in_window >= 0),
  last_sent_at timestamptz
);
`

/** Adds the notifier's incidents, deliveries and per-sink rate-limit windows, and incidents to the event log's kinds. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
