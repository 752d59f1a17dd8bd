/**
 * One owner per SOURCE path (DESIGN §4 invariant 9). A path at a SOURCE location belongs to the
 * live RawDataFile filed for it until that file's SOURCE copy is DELETED; `source_released_at`
 * records that moment, and a partial unique index lets at most one unreleased file hold a
 * (location, path). `physical_copy.identity` is what the driver said identifies the bytes when
 * they were read or written (a disk's device, inode and times; an S3 ETag), so cleanup can refuse
 * to delete an object that changed since.
 *
 * An ops-db filed before this rule may hold several files on one SOURCE path. Only the newest
 * filing can match the bytes now there, so the older ones are released, each with an event that
 * says so; the identity check at deletion still guards whatever bytes are on disk.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
alter table physical_copy add column identity text;
alter table raw_data_file add column source_released_at timestamptz;

update raw_data_file f set source_released_at = c.updated_at
from physical_copy c
where c.raw_data_file_id = f.id and c.data_location_id = f.source_location_id and c.status = 'DELETED'
  and not exists (
    select 1 from physical_copy l
    where l.raw_data_file_id = f.id and l.data_location_id = f.source_location_id and l.status <> 'DELETED');

with ranked as (
  select id, state, relative_path,
         first_value(id) over w as newest,
         row_number() over w as n
  from raw_data_file
  where source_released_at is null
  window w as (partition by source_location_id, relative_path order by filed_at desc, id desc)
),
released as (
  update raw_data_file f set source_released_at = now()
  from ranked r where r.id = f.id and r.n > 1
  returning f.id, f.state::text as state, r.newest, r.relative_path
)
insert into event_log (entity_kind, entity_id, from_state, to_state, actor, details)
select 'RawDataFile', id, state, state, 'migration',
       jsonb_build_object('action', 'source path released', 'path', relative_path, 'heldBy', newest,
         'reason', 'the path was filed again before one owner per SOURCE path was enforced')
from released;

create unique index raw_data_file_source_path_live on raw_data_file (source_location_id, relative_path)
  where source_released_at is null;
`

/** Adds the SOURCE path ownership and the copy identity. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
