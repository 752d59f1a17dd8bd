/**
 * Maintained counts, so `/status`, `/metrics` and the Influx push read a few hundred rows
 * whatever the size of the catalog. `ops_count` holds, per entity and state (and, for copies,
 * per location and kind; for transfer attempts, per hop, adapter and failure reason), how many
 * rows there are and their bytes; `ops_histogram` holds the buckets of the two histograms over
 * history (time to archive a package, duration of a completed transfer attempt).
 *
 * Statement-level triggers with transition tables add one delta row per key a statement
 * changed, in the writer's own transaction, so the counts are exact in every snapshot. Deltas
 * are only ever inserted, never updated: writers never wait on each other for a hot counter
 * row, and no lock order exists to deadlock on. A reader sums the rows of a key. Now and then
 * (one statement in 64) a writer folds up to 1000 deltas into one row per key, taking only
 * rows no one else is folding (`for update skip locked`), so the tables stay small.
 *
 * The migration fills both tables from the rows already there (`ops_count_rebuild()`, which a
 * bulk load with triggers off calls too), and adds the partial indexes the status snapshot's
 * other queries read: failed items, recent and last transfer attempts. Enum values added by
 * earlier migrations are never named here (they may run in this same transaction): statuses
 * are compared as text.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Histogram bounds in seconds: minutes to days (packages), and one transfer attempt. */
const archiveBounds = "array[60, 300, 900, 3600, 14400, 43200, 86400, 259200, 604800]::float8[]"
const transferBounds = "array[1, 10, 60, 300, 900, 3600, 14400, 43200, 86400]::float8[]"

interface Counted {
  readonly table: string
  /** Columns of ops_count as expressions over `r` (a row with its `sign`, +1 or -1). */
  readonly entity: string
  readonly state: string
  readonly location?: string
  readonly toLocation?: string
  readonly kind?: string
  readonly reason?: string
  readonly bytes: string
  readonly ms?: string
  readonly retries?: string
  /** The histogram this table feeds: its name, the value in seconds, when a row counts, its key, its bounds. */
  readonly histogram?: {
    name: string
    seconds: string
    when: string
    location?: string
    toLocation?: string
    kind?: string
    bounds: string
  }
}

const counted: ReadonlyArray<Counted> = [
  { table: "raw_data_file", entity: "RawDataFile", state: "r.state::text", bytes: "r.size_bytes" },
  {
    table: "raw_data_package",
    entity: "RawDataPackage",
    state: "r.status::text",
    bytes: "coalesce(r.size_bytes, 0)",
    histogram: {
      name: "package_archive",
      seconds: "extract(epoch from r.updated_at - r.created_at)::float8",
      when: "r.status::text = 'completed'",
      bounds: archiveBounds
    }
  },
  { table: "data_transfer_package", entity: "DataTransferPackage", state: "r.status::text", bytes: "coalesce(r.size_bytes, 0)" },
  { table: "staging_request", entity: "StagingRequest", state: "r.status::text", bytes: "0" },
  {
    table: "physical_copy",
    entity: "PhysicalCopy",
    state: "r.status::text",
    location: "r.data_location_id",
    kind: "case when r.raw_data_file_id is not null then 'file' when r.raw_data_package_id is not null then 'package' else 'bundle' end",
    bytes: "r.size_bytes"
  },
  {
    table: "data_transfer",
    entity: "DataTransfer",
    state: "r.status::text",
    location: "r.from_location_id",
    toLocation: "r.to_location_id",
    kind: "r.adapter::text",
    reason: "case when r.status::text = 'failed' then coalesce(r.error_reason, 'unknown') else '' end",
    // Only completed attempts' bytes and time are reported, so progress updates of a running attempt change nothing.
    bytes: "case when r.status::text = 'completed' then r.bytes_transferred else 0 end",
    ms: "case when r.status::text = 'completed' then coalesce(r.duration_ms, 0) else 0 end",
    retries: "(r.attempt > 1)::int",
    histogram: {
      name: "transfer_duration",
      seconds: "r.duration_ms / 1000.0",
      when: "r.status::text = 'completed' and r.duration_ms is not null",
      location: "r.from_location_id",
      toLocation: "r.to_location_id",
      kind: "r.adapter::text",
      bounds: transferBounds
    }
  }
]

/** The insert of one statement's deltas (or of a rebuild's totals) from `source` rows carrying `sign`. */
const deltas = (c: Counted, source: string) => {
  const counts = `
    insert into ops_count (entity, state, location_id, to_location_id, kind, reason, n, bytes, ms, retries)
    select '${c.entity}'::entity_kind, ${c.state}, ${c.location ?? "null::uuid"}, ${c.toLocation ?? "null::uuid"}, ${c.kind ?? "''"}, ${
      c.reason ?? "''"
    },
           sum(r.sign), sum(r.sign * ${c.bytes}), sum(r.sign * ${c.ms ?? "0"}), sum(r.sign * ${c.retries ?? "0"})
    from (${source}) r
    group by 2, 3, 4, 5, 6
    having sum(r.sign) <> 0 or sum(r.sign * ${c.bytes}) <> 0 or sum(r.sign * ${c.ms ?? "0"}) <> 0 or sum(r.sign * ${c.retries ?? "0"}) <> 0`
  const h = c.histogram
  if (h === undefined) return counts
  return `${counts};
    insert into ops_histogram (name, location_id, to_location_id, kind, le, n, total)
    select '${h.name}', ${h.location ?? "null::uuid"}, ${h.toLocation ?? "null::uuid"}, ${
      h.kind ?? "''"
    }, ops_bucket(${h.seconds}, ${h.bounds}),
           sum(r.sign), sum(r.sign * ${h.seconds})
    from (${source}) r where ${h.when}
    group by 2, 3, 4, 5
    having sum(r.sign) <> 0 or sum(r.sign * ${h.seconds}) <> 0`
}

const triggers = (c: Counted) => {
  const fn = `ops_count_${c.table}`
  return `
create function ${fn}() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    ${deltas(c, "select 1 as sign, n.* from new_rows n")};
  elsif tg_op = 'UPDATE' then
    ${deltas(c, "select 1 as sign, n.* from new_rows n union all select -1, o.* from old_rows o")};
  else
    ${deltas(c, "select -1 as sign, o.* from old_rows o")};
  end if;
  -- Only under read committed: a repeatable-read writer would fail on a row another fold removed.
  if random() < 1.0 / 64 and current_setting('transaction_isolation') = 'read committed' then perform ops_count_fold(1000); end if;
  return null;
end
$$;
create trigger ${fn}_insert after insert on ${c.table} referencing new table as new_rows for each statement execute function ${fn}();
create trigger ${fn}_update after update on ${c.table} referencing old table as old_rows new table as new_rows for each statement execute function ${fn}();
create trigger ${fn}_delete after delete on ${c.table} referencing old table as old_rows for each statement execute function ${fn}();
create trigger ${fn}_truncate after truncate on ${c.table} for each statement execute function ops_count_truncated('${c.entity}'${
  c.histogram ? `, '${c.histogram.name}'` : ""
});
`
}

const ddl = String.raw`
create table ops_count (
  entity entity_kind not null,
  state text not null,
  location_id uuid,
  to_location_id uuid,
  kind text not null default '',
  reason text not null default '',
  n bigint not null,
  bytes numeric not null default 0,
  ms numeric not null default 0,
  retries bigint not null default 0
);
create index ops_count_key on ops_count (entity, state);

create table ops_histogram (
  name text not null,
  location_id uuid,
  to_location_id uuid,
  kind text not null default '',
  le float8 not null,
  n bigint not null,
  total float8 not null default 0
);
create index ops_histogram_key on ops_histogram (name);

-- The smallest bound at or above v (Infinity above them all): the one bucket a sample falls in.
create function ops_bucket(v float8, bounds float8[]) returns float8 language sql immutable parallel safe as $$
  select coalesce((select min(b) from unnest(bounds) b where v <= b), 'Infinity'::float8)
$$;

-- Folds up to lim delta rows of each table into one row per key; rows another fold holds are skipped.
create function ops_count_fold(lim integer) returns void language plpgsql as $$
begin
  with gone as (
    delete from ops_count where ctid = any(array(select ctid from ops_count limit lim for update skip locked))
    returning *)
  insert into ops_count (entity, state, location_id, to_location_id, kind, reason, n, bytes, ms, retries)
  select entity, state, location_id, to_location_id, kind, reason, sum(n), sum(bytes), sum(ms), sum(retries)
  from gone group by 1, 2, 3, 4, 5, 6
  having sum(n) <> 0 or sum(bytes) <> 0 or sum(ms) <> 0 or sum(retries) <> 0;
  with gone as (
    delete from ops_histogram where ctid = any(array(select ctid from ops_histogram limit lim for update skip locked))
    returning *)
  insert into ops_histogram (name, location_id, to_location_id, kind, le, n, total)
  select name, location_id, to_location_id, kind, le, sum(n), sum(total)
  from gone group by 1, 2, 3, 4, 5
  having sum(n) <> 0 or sum(total) <> 0;
end
$$;

-- A truncated table counts nothing any more (tests empty tables this way).
create function ops_count_truncated() returns trigger language plpgsql as $$
begin
  delete from ops_count where entity = tg_argv[0]::entity_kind;
  if tg_nargs > 1 then delete from ops_histogram where name = tg_argv[1]; end if;
  return null;
end
$$;
`

/** Recounts both tables from the rows; what the migration runs on an existing ops-db. */
const rebuild = `
create function ops_count_rebuild() returns void language plpgsql as $$
begin
  -- Writers wait while the counts are rebuilt, so none is counted twice or missed.
  lock table ${counted.map((c) => c.table).join(", ")} in share row exclusive mode;
  delete from ops_count;
  delete from ops_histogram;
  ${counted.map((c) => deltas(c, `select 1 as sign, t.* from ${c.table} t`)).join(";\n  ")};
end
$$;
`

const indexes = String.raw`
-- The status snapshot's failed items, newest first, and the latest failure per location and route.
create index data_transfer_failed on data_transfer (updated_at) where status = 'failed';
create index data_transfer_failed_to on data_transfer (to_location_id, finished_at desc) where status = 'failed' and finished_at is not null;
create index data_transfer_failed_route on data_transfer (route_id, finished_at desc) where status = 'failed' and finished_at is not null and route_id is not null;
-- The circuit breaker's latest finished attempts per route and per destination location.
create index data_transfer_circuit_route on data_transfer (route_id, finished_at desc) where status in ('completed', 'failed') and finished_at is not null;
create index data_transfer_circuit_to on data_transfer (to_location_id, finished_at desc) where status in ('completed', 'failed') and finished_at is not null;
-- Attempts finished in the last day, per route; the latest completed attempt per hop and adapter.
create index data_transfer_finished on data_transfer (finished_at) where status in ('completed', 'failed') and route_id is not null;
create index data_transfer_last_completed on data_transfer (from_location_id, to_location_id, adapter, finished_at desc)
  where status = 'completed' and throughput_bytes_per_second is not null and finished_at is not null;
-- Copies in a failed state (DELETION_FAILED, CORRUPT, MISSING): every status but these six.
create index physical_copy_failed on physical_copy (updated_at)
  where status not in ('PRESENT', 'STAGED', 'DELETION_SCHEDULED', 'DELETION_IN_PROGRESS', 'DELETION_POSSIBLE', 'DELETED');
create index staging_request_failed on staging_request (updated_at) where status = 'failed';
`

/** Adds the maintained counts (filled from the rows already there) and the snapshot's indexes. */
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql.unsafe([ddl, rebuild, ...counted.map(triggers), indexes, "select ops_count_rebuild();"].join("\n")).raw
).pipe(Effect.asVoid)
