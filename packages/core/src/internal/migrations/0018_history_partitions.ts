/**
 * History tables that stay small to query (docs/adr/history-tables.md).
 *
 * `event_log` becomes a table partitioned by year of `at` (UTC), copied beside it while the
 * previous release's workers go on writing events, then swapped in under a lock held only for
 * the last rows: every row, index, trigger and grant it had is carried over (read from the
 * catalog, so whatever earlier migrations added comes along), the identity goes on from the last
 * id handed out, and the primary key
 * becomes `(id, at)`, since a partitioned table's keys must hold its partition key (nothing
 * references an event, and no statement relies on `id` alone being unique: ids still come from
 * one sequence). A default partition catches a row no year partition holds (a clock far off);
 * `history_partitions_ensure` creates the years ahead and moves such rows into their year.
 * Years, not months: every statement on the log is planned over its partitions, and a decade of
 * months made an item's history plan 15 times slower than a decade of years (the ADR's figures).
 * A TRUNCATE trigger is not inherited by partitions, so each partition gets its own: the log
 * stays append-only, and only `history_retire_events` takes whole years away.
 *
 * `data_transfer` stays one table: attempts are a thousandth of the files, looked up by id, and
 * chained by a unique, self-referencing `previous_attempt_id` that no partitioned table can keep.
 * `history_retire_transfers` deletes the finished attempts of completed bundles and packages
 * instead, whole chains at a time.
 *
 * What retirement takes away keeps counting: the maintained counts and histograms of the deleted
 * attempts, and the `repaired` events of the dropped years (`ccat_copies_repaired_total`), are
 * kept in `*_retired` tables that backups hold and restores count again.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Bounds of the transfer-duration histogram, as migration 0012 has them. */
const transferBounds = "array[1, 10, 60, 300, 900, 3600, 14400, 43200, 86400]::float8[]"

const functions = String.raw`
-- The partition of event_log holding the year that starts at y (UTC), by its conventional name.
create function history_partition_name(y timestamptz) returns text language sql immutable as $$
  select 'event_log_y' || to_char(y at time zone 'UTC', 'YYYY')
$$;

-- The UTC year after the one that starts at y.
create function history_next_year(y timestamptz) returns timestamptz language sql immutable as $$
  select ((y at time zone 'UTC') + interval '1 year') at time zone 'UTC'
$$;

-- Creates the year partitions of event_log from the year of from_at (or of the oldest row the
-- default partition holds, if older) to years_ahead years after the current one, and moves
-- the rows the default partition caught into their years (rows beyond the last year stay).
-- A year cannot be created beside a default partition holding rows of it, so the default is
-- taken out while they move: once, however many years it held. Returns the partitions created.
create function history_partitions_ensure(from_at timestamptz, years_ahead integer) returns integer language plpgsql as $$
declare
  oldest timestamptz;
  y timestamptz;
  last timestamptz := history_next_year(date_trunc('year', now(), 'UTC'));
  name text;
  created integer := 0;
  moving boolean;
begin
  if years_ahead is null or years_ahead < 0 or years_ahead > 10 then
    raise exception 'years_ahead must be between 0 and 10, not %', years_ahead using errcode = 'invalid_parameter_value';
  end if;
  for i in 1..years_ahead loop last := history_next_year(last); end loop;
  select min(at) into oldest from event_log_default where at < last;
  moving := oldest is not null;
  if moving then alter table event_log detach partition event_log_default; end if;
  y := date_trunc('year', least(coalesce(from_at, now()), coalesce(oldest, now()), now()), 'UTC');
  while y < last loop
    name := history_partition_name(y);
    if to_regclass(quote_ident(name)) is null then
      execute format('create table %I partition of event_log for values from (%L) to (%L)', name, y, history_next_year(y));
      execute format('create trigger event_log_no_truncate before truncate on %I for each statement execute function event_log_append_only()', name);
      created := created + 1;
    end if;
    y := history_next_year(y);
  end loop;
  if moving then
    insert into event_log overriding system value select * from event_log_default where at < last;
    delete from event_log_default where at < last;
    alter table event_log attach partition event_log_default default;
  end if;
  return created;
end
$$;

-- Drops the year partitions of event_log that end at or before cutoff, after adding their
-- repaired events to the retired counts. Returns the names of the dropped partitions.
create function history_retire_events(cutoff timestamptz) returns setof text language plpgsql as $$
declare
  p record;
  starts timestamptz;
begin
  for p in
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'event_log'::regclass and c.relname ~ '^event_log_y[0-9]{4}$'
    order by c.relname
  loop
    starts := make_timestamptz(substr(p.name, 12, 4)::int, 1, 1, 0, 0, 0, 'UTC');
    continue when history_next_year(starts) > cutoff;
    execute format($q$
      insert into event_log_retired_repaired (data_location_id, year, n)
      select c.data_location_id, %L::timestamptz, count(*)
      from %I e join physical_copy c on c.id = e.entity_id
      where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired'
      group by c.data_location_id$q$, starts, p.name);
    execute format('drop table %I', p.name);
    return next p.name;
  end loop;
end
$$;

-- Deletes the attempts of up to lim completed bundles and packages whose attempts all finished
-- before cutoff, whole chains at a time; their counts move to the retired counts, so every
-- total keeps counting them. Returns how many attempts it deleted.
create function history_retire_transfers(cutoff timestamptz, lim integer) returns integer language plpgsql as $$
declare
  deleted integer;
begin
  create temporary table history_retiring on commit drop as
  -- The oldest finished attempts of completed bundles and packages: those of bundles still
  -- moving or failed never fill a batch, however many there are.
  with candidates as (
    select distinct d.data_transfer_package_id as bundle_id, d.raw_data_package_id as package_id
    from (select t.data_transfer_package_id, t.raw_data_package_id from data_transfer t
          where t.created_at < cutoff and t.status in ('completed', 'failed')
            and (t.data_transfer_package_id is null
                 or exists (select 1 from data_transfer_package b where b.id = t.data_transfer_package_id and b.status = 'completed'))
            and (t.raw_data_package_id is null
                 or exists (select 1 from raw_data_package p where p.id = t.raw_data_package_id and p.status = 'completed'))
          order by t.created_at, t.id limit lim) d
  )
  select c.bundle_id, c.package_id from candidates c
  where not exists (
      select 1 from data_transfer d
      where (d.data_transfer_package_id = c.bundle_id or d.raw_data_package_id = c.package_id)
        and (d.status not in ('completed', 'failed') or coalesce(d.finished_at, d.updated_at) >= cutoff));
  create temporary table history_retired_rows on commit drop as
  with gone as (
    delete from data_transfer d
    where d.data_transfer_package_id in (select bundle_id from history_retiring where bundle_id is not null)
       or d.raw_data_package_id in (select package_id from history_retiring where package_id is not null)
    returning d.*)
  select * from gone;
  get diagnostics deleted = row_count;
  insert into ops_count_retired (entity, state, location_id, to_location_id, kind, reason, n, bytes, ms, retries)
  select 'DataTransfer', r.status::text, r.from_location_id, r.to_location_id, r.adapter::text,
         case when r.status::text = 'failed' then coalesce(r.error_reason, 'unknown') else '' end,
         count(*), sum(case when r.status::text = 'completed' then r.bytes_transferred else 0 end),
         sum(case when r.status::text = 'completed' then coalesce(r.duration_ms, 0) else 0 end), sum((r.attempt > 1)::int)
  from history_retired_rows r group by 2, 3, 4, 5, 6;
  insert into ops_histogram_retired (name, location_id, to_location_id, kind, le, n, total)
  select 'transfer_duration', r.from_location_id, r.to_location_id, r.adapter::text, ops_bucket(r.duration_ms / 1000.0, ${transferBounds}),
         count(*), sum(r.duration_ms / 1000.0)
  from history_retired_rows r where r.status::text = 'completed' and r.duration_ms is not null
  group by 2, 3, 4, 5;
  drop table history_retiring;
  drop table history_retired_rows;
  return deleted;
end
$$;
`

const retired = String.raw`
-- What retirement took away, still counted: rows added here are added to the maintained counts
-- too (a restore's COPY included), so the delete's negative deltas are made good.
create table ops_count_retired (like ops_count including defaults);
create table ops_histogram_retired (like ops_histogram including defaults);
create table event_log_retired_repaired (
  data_location_id uuid not null references data_location (id),
  year timestamptz not null,
  n bigint not null check (n >= 0)
);

create function ops_count_retired_added() returns trigger language plpgsql as $$
begin
  if tg_table_name = 'ops_count_retired' then
    insert into ops_count select * from new_rows;
  else
    insert into ops_histogram select * from new_rows;
  end if;
  return null;
end
$$;
create trigger ops_count_retired_added after insert on ops_count_retired
  referencing new table as new_rows for each statement execute function ops_count_retired_added();
create trigger ops_histogram_retired_added after insert on ops_histogram_retired
  referencing new table as new_rows for each statement execute function ops_count_retired_added();

-- A recount from the rows adds what retirement took away.
alter function ops_count_rebuild() rename to ops_count_recount;
create function ops_count_rebuild() returns void language plpgsql as $$
begin
  perform ops_count_recount();
  insert into ops_count select * from ops_count_retired;
  insert into ops_histogram select * from ops_histogram_retired;
end
$$;
`

/**
 * The copy, while the previous release's workers go on writing events: the partitioned table is
 * made beside the log as `event_log_next` and filled in passes of ids, holding only the lock a
 * reader holds. Every id up to the sequence's value at a pass was handed out by a transaction that
 * held its write lock on the log from before it took the id to its end, so once the writers seen
 * then have ended, every row up to that id is committed and a pass copies it (read committed: each
 * statement sees what committed before it). Indexes, triggers, grants and statistics are made on
 * the copy; passes go on while they find many new rows. When a writer stays longer than a pass
 * waits, or the transaction is not read committed, what is left is copied under the lock instead:
 * slower, never a row lost.
 */
const copy = String.raw`
do $$
declare
  seq regclass := pg_get_serial_sequence('event_log', 'id')::regclass;
  copied bigint := 0;
  upto bigint;
  handed boolean;
  settled boolean;
  writers text[];
  waited_until timestamptz;
  n bigint;
  pass integer := 0;
  y timestamptz;
  last timestamptz := history_next_year(history_next_year(date_trunc('year', now(), 'UTC')));
  d record;
  k integer := 0;
begin
  create table event_log_next (like event_log including defaults including constraints including identity
    including generated including statistics including comments) partition by range (at);
  create table event_log_default partition of event_log_next default;
  -- the years of the log's rows (an empty log: this one) and the next
  y := date_trunc('year', least(coalesce((select min(at) from event_log), now()), now()), 'UTC');
  while y < last loop
    execute format('create table %I partition of event_log_next for values from (%L) to (%L)', history_partition_name(y), y, history_next_year(y));
    y := history_next_year(y);
  end loop;

  loop
    pass := pass + 1;
    settled := current_setting('transaction_isolation') = 'read committed';
    if settled then
      execute format('select last_value, is_called from %s', seq) into upto, handed;
      if not handed then upto := upto - 1; end if;
      -- the transactions that may write the log now (vacuum and index builds take other modes)
      select coalesce(array_agg(distinct virtualtransaction), '{}') into writers from pg_locks
      where locktype = 'relation' and relation = 'event_log'::regclass and pid <> pg_backend_pid()
        and mode in ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock');
      waited_until := clock_timestamp() + interval '30 seconds';
      while exists (select 1 from pg_locks where locktype = 'relation' and relation = 'event_log'::regclass and virtualtransaction = any(writers)) loop
        settled := clock_timestamp() < waited_until;
        exit when not settled;
        perform pg_sleep(0.01);
      end loop;
    end if;
    n := 0;
    if settled then
      insert into event_log_next overriding system value select * from event_log where id > copied and id <= upto;
      get diagnostics n = row_count;
      copied := greatest(copied, upto);
    end if;
    if pass = 1 then
      -- built once the bulk is in: one sort per index rather than a row at a time
      alter table event_log_next add constraint event_log_next_pkey primary key (id, at);
      for d in select pg_get_indexdef(i.indexrelid) as def from pg_index i
               where i.indrelid = 'event_log'::regclass and not i.indisprimary order by i.indexrelid loop
        k := k + 1;
        execute regexp_replace(d.def, '^CREATE (UNIQUE )?INDEX \S+ ON (ONLY )?\S+ ', format('CREATE \1INDEX event_log_next_index_%s ON event_log_next ', k));
      end loop;
      -- no trigger fires on these inserts: the append-only ones guard updates, deletes and truncates,
      -- and the relay's names nobody on this session
      for d in select pg_get_triggerdef(t.oid) as def from pg_trigger t
               where t.tgrelid = 'event_log'::regclass and not t.tgisinternal order by t.oid loop
        execute regexp_replace(d.def, ' ON (ONLY )?\S+ ', ' ON event_log_next ');
      end loop;
      for d in select c.oid::regclass as part from pg_inherits i join pg_class c on c.oid = i.inhrelid
               where i.inhparent = 'event_log_next'::regclass loop
        execute format('create trigger event_log_no_truncate before truncate on %s for each statement execute function event_log_append_only()', d.part);
      end loop;
      -- privileges an operator granted on the log (a reporting role's SELECT)
      for d in select format('grant %s on event_log_next to %s', a.privilege_type,
                 case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end) as def
               from pg_class c cross join lateral aclexplode(c.relacl) a left join pg_roles r on r.oid = a.grantee
               where c.oid = 'event_log'::regclass loop
        execute d.def;
      end loop;
      analyze event_log_next;
    end if;
    exit when not settled or (pass > 1 and n < 1000) or pass >= 6;
  end loop;
  perform set_config('ccat.event_log_copied', copied::text, true);
end
$$;
`

/**
 * The swap: the lock is taken only now, so writers wait for the rows written since the last pass
 * and a few catalog changes, not for the copy. A writer holding its lock long makes the lock wait
 * behind it and every writer behind the lock: so the lock is asked for a second at a time, giving
 * writers their turn between tries, and without a bound only after a minute of tries.
 */
const swap = String.raw`
do $$
declare
  copied bigint := current_setting('ccat.event_log_copied')::bigint;
  saved text := current_setting('lock_timeout');
  locked boolean := false;
  next_id bigint;
  handed boolean;
  d record;
  k integer := 0;
begin
  for attempt in 1..60 loop
    begin
      perform set_config('lock_timeout', '1s', true);
      lock table event_log in access exclusive mode;
      locked := true;
    exception when lock_not_available then
      perform pg_sleep(0.05);
    end;
    exit when locked;
  end loop;
  perform set_config('lock_timeout', saved, true);
  if not locked then lock table event_log in access exclusive mode; end if;

  insert into event_log_next overriding system value select * from event_log where id > copied;
  -- ids go on from the old sequence's, handed out or not
  execute format('select last_value, is_called from %s', pg_get_serial_sequence('event_log', 'id')) into next_id, handed;
  if handed then next_id := next_id + 1; end if;
  perform setval(pg_get_serial_sequence('event_log_next', 'id'), greatest(next_id, coalesce((select max(id) from event_log_next), 0) + 1), false);

  -- the old log's index names, in the order the copy numbered them
  create temporary table event_log_index_names on commit drop as
    select row_number() over (order by i.indexrelid) as k, c.relname as name
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'event_log'::regclass and not i.indisprimary;
  drop table event_log;
  alter table event_log_next rename to event_log;
  alter table event_log rename constraint event_log_next_pkey to event_log_pkey;
  for d in select * from event_log_index_names order by k loop
    execute format('alter index event_log_next_index_%s rename to %I', d.k, d.name);
  end loop;
  drop table event_log_index_names;
  if to_regclass('event_log_id_seq') is null then
    execute format('alter sequence %s rename to event_log_id_seq', pg_get_serial_sequence('event_log', 'id'));
  end if;
end
$$;
`

/** Partitions the event log by year, and adds history maintenance and retirement. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  // what locks a table others write (data_location, by the new table's reference) comes after the copy
  sql.unsafe([functions, copy, retired, swap].join("\n")).raw).pipe(Effect.asVoid)
