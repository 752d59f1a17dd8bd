/**
 * Fixity audits and the inventory's page bounds. `location_audit` keeps, per location, when an
 * audit last ran and what the audits found, for the integrity view and the metrics; each copy's
 * last verification stays in `physical_copy.verified_at`. `location_inventory.last_key` is the
 * last key an inventory pass judged: a driver's listing cursor is opaque (an S3 continuation
 * token), yet deciding which records a page's listing should have shown needs the key range the
 * page covered. Two indexes keep both stages' queries on a location's slice of the copies: due
 * copies oldest-verified first, and live copies by path in byte order (the order listings use).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create table location_audit (
  data_location_id uuid primary key references data_location (id),
  last_audit_at timestamptz,
  copies_audited bigint not null default 0 check (copies_audited >= 0),
  bytes_audited bigint not null default 0 check (bytes_audited >= 0),
  corrupt_found bigint not null default 0 check (corrupt_found >= 0),
  missing_found bigint not null default 0 check (missing_found >= 0),
  updated_at timestamptz not null default now()
);

alter table location_inventory
  add column last_key text,
  add column dark_found bigint not null default 0 check (dark_found >= 0),
  add column missing_found bigint not null default 0 check (missing_found >= 0);

create index physical_copy_audit_due on physical_copy (data_location_id, verified_at nulls first)
  where status in ('PRESENT', 'STAGED');
create index physical_copy_path_bytes on physical_copy (data_location_id, (path::text collate "C"))
  where status <> 'DELETED';
`

/** Adds each location's audit record, the inventory's last judged key, and the indexes both stages read by. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
