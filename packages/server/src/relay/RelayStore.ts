/**
 * The relay's own durable store, in a schema `relay` of its own PostgreSQL (embedded, or the
 * one `CCAT_RELAY_DATABASE_URL` names), never the ops-db's tables:
 * - `relay.filing`: every filing the relay accepted, in acceptance order (`seq`), with the body
 *   it will send, its state (`pending`, `forwarded`, `refused` with the main's status and reason)
 *   and its own id, which is the `Idempotency-Key` it is forwarded with, so a retry after a lost
 *   answer is a replay at the main;
 * - `relay.reference`: the last reference data pulled from the main;
 * - `relay.idempotency_key`: the relay's own `Idempotency-Key` records, so an instrument's retry
 *   to the relay is answered from the record rather than queued twice.
 * A filing is acknowledged only after its insert committed, so an acknowledged filing survives a
 * SIGKILL or a power cut of the relay.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { Reference } from "./Reference.js"

const ddl = String.raw`
create schema if not exists relay;
create table if not exists relay.filing (
  seq bigserial primary key,
  id uuid not null unique,
  kind text not null check (kind in ('file', 'addFiles', 'close')),
  observation_id uuid not null,
  instrument_id uuid not null,
  account_name text not null,
  payload jsonb not null,
  state text not null default 'pending' check (state in ('pending', 'forwarded', 'refused')),
  accepted_at timestamptz not null default now(),
  attempts integer not null default 0,
  last_attempt_at timestamptz,
  last_error text,
  forwarded_at timestamptz,
  refused_at timestamptz,
  refused_status integer,
  refused_reason text
);
create index if not exists filing_pending on relay.filing (seq) where state = 'pending';
create index if not exists filing_observation on relay.filing (observation_id, kind);
create table if not exists relay.reference (
  id integer primary key check (id = 1),
  body jsonb not null,
  pulled_at timestamptz not null default now()
);
create table if not exists relay.idempotency_key (
  scope text not null,
  key text not null,
  request_sha256 text not null,
  method text not null,
  path text not null,
  state text not null check (state in ('running', 'done')),
  claim uuid not null,
  lease_until timestamptz,
  status_code integer,
  content_type text,
  body bytea,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  expires_at timestamptz not null,
  primary key (scope, key)
);
create index if not exists idempotency_key_expires on relay.idempotency_key (expires_at);
`

/** The relay's table of `Idempotency-Key` records. */
export const idempotencyTable = "relay.idempotency_key"

/** Creates the relay schema when missing (every statement is `if not exists`, in one transaction). */
export const ensureSchema = Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(sql.unsafe(ddl).raw)).pipe(Effect.asVoid)

/** The kinds of filing the relay takes: the three filing endpoints of the contract. */
export type Kind = "file" | "addFiles" | "close"

/** A filing as the relay stores it. */
export interface Filing {
  readonly seq: string
  readonly id: string
  readonly kind: Kind
  readonly observationId: string
  readonly instrumentId: string
  readonly accountName: string
  readonly payload: unknown
  readonly state: "pending" | "forwarded" | "refused"
  readonly acceptedAt: Date
  readonly attempts: number
  readonly lastError: string | null
  readonly forwardedAt: Date | null
  readonly refusedAt: Date | null
  readonly refusedStatus: number | null
  readonly refusedReason: string | null
}

/** A transaction-level advisory lock that numbers accepted filings one at a time. */
const acceptLock = 7_242_001_391_456_313_817n

/**
 * Records an accepted filing; it is durable once its transaction commits. Accepts are numbered
 * one at a time (an advisory lock held to the end of the transaction), so filings become visible
 * in `seq` order and the forwarder never passes one still being committed.
 */
export const accept = (
  filing: {
    readonly id: string
    readonly kind: Kind
    readonly observationId: string
    readonly instrumentId: string
    readonly accountName: string
    readonly payload: unknown
  }
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.zipRight(
        sql`select pg_advisory_xact_lock(${String(acceptLock)}::bigint)`,
        sql<{ seq: string; acceptedAt: Date }>`
          insert into relay.filing (id, kind, observation_id, instrument_id, account_name, payload)
          values (${filing.id}, ${filing.kind}, ${filing.observationId}, ${filing.instrumentId}, ${filing.accountName}, ${
            JSON.stringify(filing.payload)
          }::jsonb)
          returning seq, accepted_at`
      )
    )).pipe(Effect.map((rows) => rows[0]))

/** The instrument of an observation filed through this relay, if it was. */
export const instrumentOfObservation = (observationId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        { instrumentId: string }
      >`select instrument_id from relay.filing where observation_id = ${observationId} and kind = 'file' order by seq limit 1`
  ).pipe(Effect.map((rows) => rows[0]?.instrumentId))

// JSON goes out as text: the client's name transform would otherwise rename an instrument's own metadata keys.
const withPayload = (rows: ReadonlyArray<Omit<Filing, "payload"> & { readonly payload: string }>): Array<Filing> =>
  rows.map((r) => ({ ...r, payload: JSON.parse(r.payload) as unknown }))

/** The body of the observation's first filing through this relay (its start, ObsUnit, metadata). */
export const firstPayload = (observationId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        { payload: string }
      >`select payload::text as payload from relay.filing where observation_id = ${observationId} and kind = 'file' order by seq limit 1`
  ).pipe(Effect.map((rows) => JSON.parse(rows[0]?.payload ?? "null") as unknown))

/** The oldest filing still to forward. */
export const nextPending = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<
      Omit<Filing, "payload"> & { payload: string }
    >`select *, payload::text as payload from relay.filing where state = 'pending' order by seq limit 1`
).pipe(Effect.map((rows) => withPayload(rows)[0]))

/** The main took the filing (or answered a replay of it). */
export const markForwarded = (seq: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (
      sql
    ) => sql`update relay.filing set state = 'forwarded', forwarded_at = now(), attempts = attempts + 1, last_attempt_at = now(), last_error = null
        where seq = ${seq} and state = 'pending'`
  ).pipe(Effect.asVoid)

/** The main refused the filing for good: kept with its reason, never dropped. */
export const markRefused = (seq: string, status: number | undefined, reason: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (
      sql
    ) => sql`update relay.filing set state = 'refused', refused_at = now(), refused_status = ${status ?? null}, refused_reason = ${reason},
        attempts = attempts + 1, last_attempt_at = now(), last_error = ${reason}
        where seq = ${seq} and state = 'pending'`
  ).pipe(Effect.asVoid)

/** An attempt failed for a reason that may pass (link down, main restarting, relay token refused). */
export const markAttemptFailed = (seq: string, reason: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`update relay.filing set attempts = attempts + 1, last_attempt_at = now(), last_error = ${reason} where seq = ${seq}`
  ).pipe(Effect.asVoid)

/** Backlog figures for status and metrics. */
export interface Backlog {
  readonly pending: number
  readonly oldestPendingAgeSeconds: number
  readonly forwarded: number
  readonly refused: number
  readonly lastError: string | null
}

/** Counts the backlog. */
export const backlog = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ pending: number; oldest: number | null; forwarded: number; refused: number; lastError: string | null }>`
    select count(*) filter (where state = 'pending')::int as pending,
      extract(epoch from now() - min(accepted_at) filter (where state = 'pending'))::float8 as oldest,
      count(*) filter (where state = 'forwarded')::int as forwarded,
      count(*) filter (where state = 'refused')::int as refused,
      (select last_error from relay.filing where state = 'pending' order by seq limit 1) as last_error
    from relay.filing`
).pipe(
  Effect.map(([r]): Backlog => ({
    pending: r.pending,
    oldestPendingAgeSeconds: r.oldest ?? 0,
    forwarded: r.forwarded,
    refused: r.refused,
    lastError: r.lastError
  }))
)

/** The refused filings, newest first (at most `limit`). */
export const refused = (limit: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        Omit<Filing, "payload"> & { payload: string }
      >`select *, payload::text as payload from relay.filing where state = 'refused' order by seq desc limit ${limit}`
  ).pipe(Effect.map(withPayload))

/** Saves pulled reference data. */
export const saveReference = (reference: Reference) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (
      sql
    ) => sql`insert into relay.reference (id, body, pulled_at) values (1, ${
      JSON.stringify(Schema.encodeSync(Reference)(reference))
    }::jsonb, now())
        on conflict (id) do update set body = excluded.body, pulled_at = excluded.pulled_at`
  ).pipe(Effect.asVoid)

/** The last reference data pulled, with when, if any was. */
export const loadReference = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ body: string; pulledAt: Date }>`select body::text as body, pulled_at from relay.reference where id = 1`
).pipe(
  Effect.flatMap((rows) =>
    rows.length === 0
      ? Effect.succeed(undefined)
      : Effect.map(Schema.decodeUnknown(Schema.parseJson(Reference))(rows[0].body), (reference) => ({
        reference,
        pulledAt: rows[0].pulledAt
      }))
  )
)
