/**
 * The packages whose checksum an update changed, found without joining the statement's old rows
 * to its new ones. Migration 0029's trigger joined the two transition tables; PostgreSQL knows
 * no statistics for them and, with a plan made for a statement of a few rows, may join them in
 * a nested loop: one statement that updated 23,500 packages (stamping their archive time) ran
 * for minutes, reading the spilled old rows once per new row. Now the old and new rows are
 * grouped by package (one pass over each), and a package counts as changed when its two
 * checksums differ or one of them is missing. The counts kept are the same.
 *
 * Replaces a function body only: no table, column or trigger changes, and the previous release's
 * processes are served by the new body as by the old one.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create or replace function ops_integrity_raw_data_package() returns trigger language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into ops_package_archive_copies (raw_data_package_id, good) select n.id, 0 from new_rows n;
  elsif tg_op = 'UPDATE' then
    update ops_package_archive_copies a set good = (select count(*)::int from physical_copy r join data_location l on l.id = r.data_location_id
      where r.raw_data_package_id = p.id and r.raw_data_package_id is not null and l.type::text = 'LONG_TERM_ARCHIVE'
        and r.status::text = 'PRESENT' and r.verified_at is not null and r.checksum = p.checksum)
    from raw_data_package p
    where p.id = a.raw_data_package_id
      and p.id = any(array(
        select x.id from (select n.id, n.checksum from new_rows n union all select o.id, o.checksum from old_rows o) x
        group by x.id
        having count(*) <> 2 or count(distinct x.checksum) = 2 or count(x.checksum) = 1));
  else
    delete from ops_package_archive_copies a using old_rows o where a.raw_data_package_id = o.id;
  end if;
  return null;
end
$$;
`

/** Counts a package's good archive copies again after an update of its checksum, in one pass over the statement's rows. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
