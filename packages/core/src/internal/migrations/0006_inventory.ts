/**
 * Inventory reconciliation's record. `dark_object` lists objects found in a location's storage
 * that no PhysicalCopy accounts for: reported to operators, never deleted by reconciliation (a
 * writer's temporary files stay the sweep's). A row is resolved when a later pass no longer finds
 * the object, or finds it accounted for. `location_inventory` keeps each location's pass: where a
 * pass that runs over several jobs continues (a listing cursor), and when the last one finished.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create table dark_object (
  id uuid primary key default gen_random_uuid(),
  data_location_id uuid not null references data_location (id),
  path text not null check (path <> ''),
  size_bytes byte_size,
  first_seen_at timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  resolved_at timestamptz
);
create unique index dark_object_live on dark_object (data_location_id, path) where resolved_at is null;

create table location_inventory (
  data_location_id uuid primary key references data_location (id),
  cursor text,
  pass_started_at timestamptz,
  last_pass_completed_at timestamptz,
  objects_seen bigint not null default 0 check (objects_seen >= 0),
  updated_at timestamptz not null default now()
);
`

/** Adds the dark-object findings and each location's inventory pass. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
