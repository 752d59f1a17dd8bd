/**
 * A positional index for ADQL's region predicates over `ivoa.obscore`, without pgSphere (which
 * neither the embedded PostgreSQL nor every site's server has): a GiST index on each Source's
 * position as a plane `point(ra_deg, dec_deg)`, built into PostgreSQL (no extension). The TAP
 * translator puts a bounding test in front of each exact spherical predicate over a row's
 * position, `point(s_ra, s_dec) <@ box(...)` (up to three boxes, for a cone across ra = 0/360),
 * which the view passes down to `source`, so a cone search reads the Sources near the cone and
 * their observations, not every row; the exact predicate still decides.
 *
 * `ivoa.obscore_max_radius()` bounds every row's `s_region` radius (half of the largest field of
 * view, which is where `s_fov` comes from) so predicates over `s_region` get a bounding test too.
 *
 * Expand-only. The index is a plain CREATE INDEX in the migration's transaction, as in 0013: on a
 * large ops-db build it beforehand with CREATE INDEX CONCURRENTLY under the same name
 * (docs/scaling.md), and `if not exists` finds it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create index if not exists source_position on source using gist (point(ra_deg, dec_deg));

-- s_fov of every ObsCore row is an instrument module's fov_deg; a stable function, so the
-- planner evaluates it once per scan and an index condition may hold it
create or replace function ivoa.obscore_max_radius() returns double precision language sql stable parallel safe as $$
  select coalesce(max(fov_deg), 0) / 2 from instrument_module
$$;
`

/** Adds the Sources' positional index and the bound of the ObsCore rows' region radius. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
