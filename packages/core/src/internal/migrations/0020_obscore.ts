/**
 * IVOA ObsCore 1.1 over the ops-db: the view `ivoa.obscore`, one row per observation and
 * instrument module whose raw data is archived, with every mandatory ObsCore column (their
 * names, types, units and UCDs are described in `ObsCore.ts`) and hidden `ccat_*` columns for
 * the access rules of a TAP service. `ivoa.publisher` holds the one row that makes identifiers
 * and links: the IVOA authority of `obs_publisher_did`, the public base URL of `access_url`
 * (the server writes it from its configuration at start) and the collection name.
 *
 * A view, not a maintained table: it is always exactly what the ops-db says, with nothing to
 * keep in step. It is driven by observations, not by files: each row looks up its packages
 * through `raw_data_package_eou` and its unpackaged files through `raw_data_file_unpackaged`,
 * so a query narrowed by time, program or source touches only those observations, and the
 * cost of a full scan grows with observations × modules, not with files.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create schema ivoa;

create table ivoa.publisher (
  singleton boolean primary key default true check (singleton),
  -- ivo://authority/resource; obs_publisher_did is this, '?', and the row's local id
  authority text not null check (authority ~ '^ivo://[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$'),
  -- the server's public URL, without a trailing slash; /api/v1/... follows it
  base_url text not null check (base_url ~ '^https?://[^\s?#]+[^/\s?#]$'),
  collection display_name not null default 'CCAT',
  updated_at timestamptz not null default now()
);
insert into ivoa.publisher (authority, base_url) values ('ivo://ccat.invalid/archive', 'http://127.0.0.1:8080');

-- Percent-encodes an obs_publisher_did for a URL query: the authority's checked alphabet leaves
-- only these three characters to encode.
create function ivoa.encode_did(did text) returns text language sql immutable strict parallel safe as $$
  select replace(replace(replace(did, ':', '%3A'), '/', '%2F'), '?', '%3F')
$$;

-- Modified Julian Date of an instant (ObsCore's t_min and t_max).
create function ivoa.mjd(t timestamptz) returns double precision language sql immutable strict parallel safe as $$
  select extract(epoch from t)::double precision / 86400.0 + 40587.0
$$;

-- ObsCore's obs_id is text and its times MJD: these let a query by either use an index.
create index executed_obs_unit_obs_id on executed_obs_unit ((id::text));
create index executed_obs_unit_mjd on executed_obs_unit (ivoa.mjd(start_at));

create view ivoa.obscore as
select
  m.dataproduct_type::text                                        as dataproduct_type,
  m.raw_calib_level::smallint                                     as calib_level,
  pub.collection::text                                            as obs_collection,
  e.id::text                                                      as obs_id,
  d.did                                                           as obs_publisher_did,
  pub.base_url || '/api/v1/datalink?ID=' || ivoa.encode_did(d.did) as access_url,
  'application/x-votable+xml;content=datalink'::text              as access_format,
  ceil(a.size_bytes / 1024.0)::bigint                             as access_estsize,
  coalesce(s.name::text, nullif(u.target, ''))                    as target_name,
  s.ra_deg                                                        as s_ra,
  s.dec_deg                                                       as s_dec,
  m.fov_deg                                                       as s_fov,
  case when s.ra_deg is not null and m.fov_deg is not null
    then 'Circle ICRS ' || s.ra_deg || ' ' || s.dec_deg || ' ' || (m.fov_deg / 2) end as s_region,
  m.resolution_arcsec                                             as s_resolution,
  null::bigint                                                    as s_xel1,
  null::bigint                                                    as s_xel2,
  ivoa.mjd(e.start_at)                                            as t_min,
  ivoa.mjd(e.end_at)                                              as t_max,
  extract(epoch from e.end_at - e.start_at)::double precision     as t_exptime,
  null::double precision                                          as t_resolution,
  null::bigint                                                    as t_xel,
  m.em_min                                                        as em_min,
  m.em_max                                                        as em_max,
  m.em_res_power                                                  as em_res_power,
  null::bigint                                                    as em_xel,
  null::text                                                      as o_ucd,
  m.pol_states                                                    as pol_states,
  case when m.pol_states is null then null
    else (length(m.pol_states) - length(replace(m.pol_states, '/', '')) - 1)::bigint end as pol_xel,
  t.name::text                                                    as facility_name,
  i.name::text                                                    as instrument_name,
  -- not ObsCore: what a TAP service needs for its access rules and links
  u.observing_program_id                                          as ccat_program_id,
  case when p.proprietary_period_days is null then null
    else e.end_at + make_interval(days => p.proprietary_period_days) end as ccat_public_from,
  i.id                                                            as ccat_instrument_id,
  e.id                                                            as ccat_observation_id,
  m.id                                                            as ccat_instrument_module_id,
  m.name::text                                                    as ccat_instrument_module,
  u.id                                                            as ccat_obs_unit_id,
  u.sub_observing_program_id                                      as ccat_sub_program_id,
  s.id                                                            as ccat_source_id,
  om.name::text                                                   as ccat_observing_mode,
  e.quality::text                                                 as ccat_quality,
  a.packages                                                      as ccat_packages
from executed_obs_unit e
join obs_unit u on u.id = e.obs_unit_id
join observing_program p on p.id = u.observing_program_id
join instrument i on i.id = u.instrument_id
join telescope t on t.id = i.telescope_id
join instrument_module m on m.instrument_id = i.id
left join source s on s.id = u.source_id
left join observing_mode om on om.id = u.observing_mode_id
cross join ivoa.publisher pub
cross join lateral (
  select count(*) as packages, sum(r.size_bytes) as size_bytes, bool_and(r.status = 'completed') as archived
  from raw_data_package r
  where r.executed_obs_unit_id = e.id and r.instrument_module_id = m.id
) a
cross join lateral (select pub.authority || '?' || e.id || '/' || m.id as did) d
where e.status = 'completed'
  and e.end_at is not null
  and a.packages > 0
  and a.archived
  and not exists (
    select 1 from raw_data_file f
    where f.executed_obs_unit_id = e.id and f.instrument_module_id = m.id
      and f.state = 'filed' and f.raw_data_package_id is null
  );
`

/** Creates the `ivoa` schema: the publisher row, the helper functions and the ObsCore view. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
