/**
 * Idempotency keys: one row per (caller, key) that a POST carried. The first request with a key
 * claims the row (`running`, with a lease so a process killed mid-request does not hold the key
 * for ever), runs, and records its answer (`done`: status, content type, body) with a hash of
 * the request; a retry with the same key and the same request is answered from the row, the
 * same key with another request is refused. Rows expire after the server's retention; the
 * index on `expires_at` lets the purge delete them in one range scan. A relay keeps its own
 * copy of this table in its own schema, so the caller is a text scope rather than a foreign key.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create table idempotency_key (
  scope text not null check (length(scope) between 1 and 200),
  key text not null check (key ~ '^[A-Za-z0-9._:-]{1,128}$'),
  request_sha256 text not null check (request_sha256 ~ '^[0-9a-f]{64}$'),
  method text not null,
  path text not null,
  state text not null check (state in ('running', 'done')),
  claim uuid not null,
  lease_until timestamptz,
  status_code integer check (status_code between 100 and 599),
  content_type text,
  body bytea,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  expires_at timestamptz not null,
  primary key (scope, key),
  check ((state = 'running') = (status_code is null))
);
create index idempotency_key_expires on idempotency_key (expires_at);
`

/** Adds the idempotency key store. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
