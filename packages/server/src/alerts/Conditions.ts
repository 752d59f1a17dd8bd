/**
 * What each condition of the catalogue finds in the ops-db now: one row per thing it holds for
 * (`key` names the thing, `labels` tell a person which one), and since when it holds. Every query
 * stays on live or failed rows through partial indexes, or on the maintained counts, so an
 * evaluation costs the same on an ops-db of ten million files as on a test's ten (docs/alerts.md
 * gives each query's plan):
 * - failed packages, bundles and staging requests: the partial indexes of open or failed rows;
 * - open circuits: per route, a bounded descent of the failed-attempt index since its last success;
 * - fill: the maintained copy counts per location (`ops_count`), never the copies;
 * - backlogs: the oldest open row of each stage, one descent of a page-order partial index;
 * - audit findings: each location's CORRUPT and MISSING copies and its unresolved dark objects.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import type { AlertName } from "./Catalogue.js"
import type { NotifierConfig } from "./NotifierConfig.js"

/** The thresholds a query needs: the configured ones, and the breaker's from the transfer policy. */
export interface Thresholds {
  readonly conditions: NotifierConfig["conditions"]
  /** Consecutive failed attempts that open a route's circuit. */
  readonly breakerThreshold: number
}

/**
 * A condition's query: rows of `key` (unique among what it finds), `labels` (a JSON object of
 * strings), `summary`, `description` and `started_at`.
 */
export type Query = (sql: SqlClient.SqlClient, t: Thresholds) => Fragment

const ms = (sql: SqlClient.SqlClient, millis: number) => sql`make_interval(secs => ${millis / 1000})`

/** A FAILED row of `table`, one incident each, labelled with its id and entity. */
const failedRows = (entity: string, table: "raw_data_package" | "data_transfer_package", name: AlertName): Query => (sql) => sql`
  select ${name}::text || ':' || t.id as key,
    jsonb_build_object('id', t.id::text, 'entity', ${entity}::text, 'path', t.relative_path::text) as labels,
    ${entity}::text || ' ' || t.relative_path || ' ended FAILED' as summary,
    coalesce(t.error_message, '') as description,
    t.updated_at as started_at
  from ${sql(table)} t where t.status = 'failed' and t.status <> 'completed'`

const stagingFailed: Query = (sql) => sql`
  select 'CcatStagingRequestFailed:' || r.id as key,
    jsonb_build_object('id', r.id::text, 'entity', 'StagingRequest', 'account', a.name::text, 'location', l.name::text) as labels,
    'StagingRequest ' || r.id || ' of ' || a.name || ' to ' || l.name || ' ended FAILED' as summary,
    coalesce(r.error_message, '') as description,
    r.updated_at as started_at
  from staging_request r join account a on a.id = r.account_id join data_location l on l.id = r.data_location_id
  where r.status = 'failed'`

/**
 * A route whose last `breakerThreshold` counted attempts all failed (the breaker's own rule,
 * `Routes.circuit`) opened its circuit at the threshold-th failure after its last success; it
 * alerts once that is longer ago than allowed. Attempts cut short by a stopping worker say
 * nothing of the route and are skipped, as the breaker skips them.
 */
const circuitOpen: Query = (sql, t) => sql`
  select 'CcatCircuitOpen:' || r.id as key,
    jsonb_build_object('route_id', r.id::text, 'from', fs.name::text, 'to', ts.name::text, 'adapter', r.adapter::text) as labels,
    'The circuit of route ' || fs.name || ' -> ' || ts.name || ' (' || r.adapter || ') is open' as summary,
    'open since ' || to_char(o.opened_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '; the last failure: ' ||
      coalesce((select f.error_message from data_transfer f where f.route_id = r.id and f.status = 'failed' and f.finished_at is not null
                order by f.finished_at desc limit 1), 'unknown') as description,
    o.opened_at as started_at
  from route r join site fs on fs.id = r.from_site_id join site ts on ts.id = r.to_site_id
  cross join lateral (
    select f.finished_at as opened_at from data_transfer f
    where f.route_id = r.id and f.status = 'failed' and f.finished_at is not null and coalesce(f.error_reason, '') <> 'Interrupted'
      and f.finished_at > coalesce((
        select c.finished_at from data_transfer c
        where c.route_id = r.id and c.status in ('completed', 'failed') and c.finished_at is not null and c.status = 'completed'
        order by c.finished_at desc limit 1), '-infinity')
    order by f.finished_at asc offset ${t.breakerThreshold - 1} limit 1) o
  where o.opened_at <= now() - ${ms(sql, t.conditions.circuitOpenFor)}`

/** A location with a capacity whose live copies' bytes (the maintained counts) pass the threshold. */
const locationFull: Query = (sql, t) => sql`
  select 'CcatLocationFull:' || l.id as key,
    jsonb_build_object('location', l.name::text, 'site', s.name::text, 'type', l.type::text) as labels,
    'Location ' || l.name || ' at ' || s.name || ' is ' || round(100 * u.used / l.capacity_bytes) || ' % full' as summary,
    u.used::text || ' of ' || l.capacity_bytes::text || ' bytes hold live copies; the alert threshold is ' || ${t.conditions.locationFullPercent}::text || ' %' as description,
    now() as started_at
  from data_location l join site s on s.id = l.site_id
  join (select c.location_id, sum(c.bytes) as used from ops_count c
        where c.entity = 'PhysicalCopy' and c.state <> 'DELETED' group by c.location_id) u on u.location_id = l.id
  where l.capacity_bytes > 0 and u.used * 100 >= l.capacity_bytes * ${t.conditions.locationFullPercent}`

/** The oldest open item of each stage against the stage's allowance; each is one index descent. */
const stageBacklog: Query = (sql, t) => {
  const w = t.conditions.stageMaxWait
  return sql`
  select 'CcatStageBacklogOld:' || b.stage as key,
    jsonb_build_object('stage', b.stage) as labels,
    'Work has waited at stage ' || b.stage || ' since ' || to_char(b.since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as summary,
    'the oldest ' || b.what || ' waits longer than the ' || b.allowed || ' seconds the stage allows' as description,
    b.since as started_at
  from (
    select 'packaging' as stage, 'file filed and not yet packaged' as what, ${w.packaging / 1000}::text as allowed, ${w.packaging}::float8 as max_ms,
      (select f.filed_at from raw_data_file f where f.state = 'filed' and f.raw_data_package_id is null and f.state <> 'packaged'
       order by f.filed_at limit 1) as since
    union all
    select 'archiving', 'RawDataPackage not yet ARCHIVED', ${w.archiving / 1000}::text, ${w.archiving}::float8,
      (select p.created_at from raw_data_package p where p.status in ('pending', 'scheduled', 'in_progress') and p.status <> 'completed'
       order by p.created_at limit 1)
    union all
    select 'transfer', 'bundle not yet delivered', ${w.transfer / 1000}::text, ${w.transfer}::float8,
      (select d.created_at from data_transfer_package d where d.status in ('pending', 'scheduled', 'in_progress') and d.status <> 'completed'
       order by d.created_at limit 1)
    union all
    select 'staging', 'staging request not yet STAGED', ${w.staging / 1000}::text, ${w.staging}::float8,
      (select min(r.created_at) from staging_request r where r.status in ('pending', 'scheduled', 'in_progress'))
  ) b
  where b.since is not null and b.since <= now() - make_interval(secs => b.max_ms / 1000)`
}

/** Per location: copies CORRUPT or MISSING and unresolved dark objects, once the oldest finding is old enough. */
const auditFindings: Query = (sql, t) => sql`
  select 'CcatAuditFindings:' || l.id as key,
    jsonb_build_object('location', l.name::text, 'site', s.name::text) as labels,
    'Location ' || l.name || ' at ' || s.name || ' has unrepaired audit findings' as summary,
    f.corrupt || ' CORRUPT and ' || f.missing || ' MISSING copies, ' || f.dark || ' unresolved dark objects' as description,
    least(f.bad_since, f.dark_since) as started_at
  from data_location l join site s on s.id = l.site_id
  cross join lateral (select
      (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'CORRUPT' and c.status <> 'DELETED') as corrupt,
      (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'MISSING' and c.status <> 'DELETED') as missing,
      (select min(c.updated_at) from physical_copy c where c.data_location_id = l.id and c.status in ('CORRUPT', 'MISSING') and c.status <> 'DELETED') as bad_since,
      (select count(*) from dark_object d where d.data_location_id = l.id and d.resolved_at is null) as dark,
      (select min(d.first_seen_at) from dark_object d where d.data_location_id = l.id and d.resolved_at is null) as dark_since) f
  where least(f.bad_since, f.dark_since) <= now() - ${ms(sql, t.conditions.findingsFor)}`

/** The query of every condition the notifier evaluates (the relay's backlog is the Prometheus rule's). */
export const queries: ReadonlyArray<readonly [AlertName, Query]> = [
  ["CcatPackageFailed", failedRows("RawDataPackage", "raw_data_package", "CcatPackageFailed")],
  ["CcatBundleFailed", failedRows("DataTransferPackage", "data_transfer_package", "CcatBundleFailed")],
  ["CcatStagingRequestFailed", stagingFailed],
  ["CcatCircuitOpen", circuitOpen],
  ["CcatLocationFull", locationFull],
  ["CcatStageBacklogOld", stageBacklog],
  ["CcatAuditFindings", auditFindings]
]
