/**
 * Maintained integrity figures, so the integrity view and its metrics read what changes, not the
 * catalog. Two tables beside `ops_count`, kept by statement-level triggers in the writer's own
 * transaction (exact in every snapshot, rolled back with the writer):
 *
 * - `ops_count_verified`: live copies (every status but DELETED) with a verification, per
 *   location and UTC day of `verified_at`, as delta rows like `ops_count`'s (inserted only, summed
 *   by readers, folded now and then). The copies verified within an audit cycle are the days after
 *   the cycle's first day, summed from here, and that first day's copies from the index
 *   `physical_copy_integrity`: the reader's cost follows the cycle's days and one day's audits.
 * - `ops_package_archive_copies`: per package, how many good archive copies it has (PRESENT,
 *   verified, with the package's checksum, at a LONG_TERM_ARCHIVE). A row per package, made with
 *   it, so a copy's change adds to its package's row under that row's lock: two writers of one
 *   package's copies wait for each other instead of missing each other's change. Only a change
 *   of a copy's goodness takes that lock (not a package's own transitions, nor a verification
 *   again), so writers meet there only where they change the same package's good copies. The
 *   packages below a copy target (which the configuration may change) are a range of the index
 *   on `good`: those below it and the packages not completed yet, however many are archived.
 *
 * `ops_count_rebuild()`, which a bulk load with triggers off calls, now recounts both too
 * (`ops_integrity_recount()`); the migration runs that recount on the rows already there.
 * Statuses and location types are compared as text, as in migration 0012.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** A copy's row `r` (with `p` its package, `l` its location) counts as a good archive copy. */
const good = `r.raw_data_package_id is not null and l.type::text = 'LONG_TERM_ARCHIVE'
        and r.status::text = 'PRESENT' and r.verified_at is not null and r.checksum = p.checksum`

/** The deltas of one statement on physical_copy, from `source` rows carrying `sign`. */
const copyDeltas = (source: string) => `
    insert into ops_count_verified (location_id, day, n)
    select r.data_location_id, (r.verified_at at time zone 'UTC')::date, sum(r.sign)
    from (${source}) r
    where r.status::text <> 'DELETED' and r.verified_at is not null
    group by 1, 2
    having sum(r.sign) <> 0;
    update ops_package_archive_copies a set good = a.good + d.n
    from (
      select r.raw_data_package_id as id, sum(r.sign)::int as n
      from (${source}) r
      join raw_data_package p on p.id = r.raw_data_package_id
      join data_location l on l.id = r.data_location_id
      where ${good}
      group by 1
      having sum(r.sign) <> 0) d
    where a.raw_data_package_id = d.id`

/** A package's good archive copies counted from the rows (`p` the package). */
const recountGood = `(select count(*)::int from physical_copy r join data_location l on l.id = r.data_location_id
      where r.raw_data_package_id = p.id and ${good})`

const ddl = String.raw`
create table ops_count_verified (
  location_id uuid not null,
  day date not null,
  n bigint not null
);
create index ops_count_verified_key on ops_count_verified (location_id, day);

create table ops_package_archive_copies (
  raw_data_package_id uuid primary key,
  good integer not null
);
create index ops_package_archive_copies_below on ops_package_archive_copies (good, raw_data_package_id);

-- Folds up to lim delta rows into one row per key; rows another fold holds are skipped.
create function ops_count_verified_fold(lim integer) returns void language plpgsql as $$
begin
  with gone as (
    delete from ops_count_verified where ctid = any(array(select ctid from ops_count_verified limit lim for update skip locked))
    returning *)
  insert into ops_count_verified (location_id, day, n)
  select location_id, day, sum(n) from gone group by 1, 2 having sum(n) <> 0;
end
$$;

create function ops_integrity_physical_copy() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    ${copyDeltas("select 1 as sign, n.* from new_rows n")};
  elsif tg_op = 'UPDATE' then
    ${copyDeltas("select 1 as sign, n.* from new_rows n union all select -1, o.* from old_rows o")};
  else
    ${copyDeltas("select -1 as sign, o.* from old_rows o")};
  end if;
  -- Only under read committed: a repeatable-read writer would fail on a row another fold removed.
  if random() < 1.0 / 64 and current_setting('transaction_isolation') = 'read committed' then perform ops_count_verified_fold(1000); end if;
  return null;
end
$$;
create trigger ops_integrity_physical_copy_insert after insert on physical_copy
  referencing new table as new_rows for each statement execute function ops_integrity_physical_copy();
create trigger ops_integrity_physical_copy_update after update on physical_copy
  referencing old table as old_rows new table as new_rows for each statement execute function ops_integrity_physical_copy();
create trigger ops_integrity_physical_copy_delete after delete on physical_copy
  referencing old table as old_rows for each statement execute function ops_integrity_physical_copy();

-- No copies left: no verified copies, and no package has a good archive copy.
create function ops_integrity_physical_copy_truncated() returns trigger language plpgsql as $$
begin
  delete from ops_count_verified;
  update ops_package_archive_copies set good = 0 where good <> 0;
  return null;
end
$$;
create trigger ops_integrity_physical_copy_truncate after truncate on physical_copy
  for each statement execute function ops_integrity_physical_copy_truncated();

-- A package's row: made with it (no copy can name it before), and its good copies counted again
-- when its checksum changes (a package written again).
create function ops_integrity_raw_data_package() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into ops_package_archive_copies (raw_data_package_id, good) select n.id, 0 from new_rows n;
  elsif tg_op = 'UPDATE' then
    update ops_package_archive_copies a set good = ${recountGood}
    from raw_data_package p
    where p.id = a.raw_data_package_id
      and p.id in (select n.id from new_rows n join old_rows o on o.id = n.id where n.checksum is distinct from o.checksum);
  else
    delete from ops_package_archive_copies a using old_rows o where a.raw_data_package_id = o.id;
  end if;
  return null;
end
$$;
create trigger ops_integrity_raw_data_package_insert after insert on raw_data_package
  referencing new table as new_rows for each statement execute function ops_integrity_raw_data_package();
create trigger ops_integrity_raw_data_package_update after update on raw_data_package
  referencing old table as old_rows new table as new_rows for each statement execute function ops_integrity_raw_data_package();
create trigger ops_integrity_raw_data_package_delete after delete on raw_data_package
  referencing old table as old_rows for each statement execute function ops_integrity_raw_data_package();

create function ops_integrity_raw_data_package_truncated() returns trigger language plpgsql as $$
begin
  delete from ops_package_archive_copies;
  return null;
end
$$;
create trigger ops_integrity_raw_data_package_truncate after truncate on raw_data_package
  for each statement execute function ops_integrity_raw_data_package_truncated();

-- A location that becomes or stops being an archive: its packages' good copies counted again.
create function ops_integrity_data_location() returns trigger language plpgsql as $$
begin
  update ops_package_archive_copies a set good = ${recountGood}
  from raw_data_package p
  where p.id = a.raw_data_package_id and p.id in (
    select c.raw_data_package_id from physical_copy c
    join new_rows n on n.id = c.data_location_id join old_rows o on o.id = n.id
    where n.type is distinct from o.type and c.raw_data_package_id is not null);
  return null;
end
$$;
create trigger ops_integrity_data_location_update after update on data_location
  referencing old table as old_rows new table as new_rows for each statement execute function ops_integrity_data_location();

-- Both tables counted again from the rows, writers waiting meanwhile so none is missed or counted twice.
create function ops_integrity_recount() returns void language plpgsql as $$
begin
  lock table data_location, raw_data_package, physical_copy in share row exclusive mode;
  delete from ops_count_verified;
  insert into ops_count_verified (location_id, day, n)
  select data_location_id, (verified_at at time zone 'UTC')::date, count(*)
  from physical_copy where status::text <> 'DELETED' and verified_at is not null
  group by 1, 2;
  delete from ops_package_archive_copies;
  insert into ops_package_archive_copies (raw_data_package_id, good)
  select p.id, count(r.id)::int
  from raw_data_package p
  left join (physical_copy r join data_location l on l.id = r.data_location_id and l.type::text = 'LONG_TERM_ARCHIVE')
    on r.raw_data_package_id = p.id and r.status::text = 'PRESENT' and r.verified_at is not null and r.checksum = p.checksum
  group by p.id;
end
$$;

-- The recount of every maintained figure (migration 0018's, and this one's).
create or replace function ops_count_rebuild() returns void language plpgsql as $$
begin
  perform ops_count_recount();
  insert into ops_count select * from ops_count_retired;
  insert into ops_histogram select * from ops_histogram_retired;
  perform ops_integrity_recount();
end
$$;

select ops_integrity_recount();
`

/** Adds the maintained integrity figures, counted from the rows already there. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
