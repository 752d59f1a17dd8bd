/**
 * The bundling planner: which RawDataPackages wait at a site's BUFFER for a route on, and how
 * they are cut into DataTransferPackages. Bundles fill oldest package first up to the site's
 * size target (`targetBytes`: `bundleTargetBytes`, or what the first route out moves in its
 * `bundleTransferTime` at its measured bandwidth); a partial one goes once its oldest package
 * waited `bundleMaxWait`. The
 * packages are claimed and the bundle's job enqueued in one transaction under a per-site lock, so
 * two planners never bundle a package twice, and jobs a lost queue dropped are derived again
 * from the ops-db.
 */
import { BundlePlan, EventLog, Ids } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as JobStatements from "../engine/JobStatements.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as RepairForward from "./RepairForward.js"
import * as SentFrom from "./SentFrom.js"
import * as Sites from "./Sites.js"
import * as Routes from "./Routes.js"
import { queueName } from "./Stage.js"

/** The stage's name and queue suffix. */
export const name = "bundle"

/**
 * Packages waiting at a site: written (in_progress, with size and checksum), PRESENT in one of
 * its BUFFERs, in no bundle that is open or failed, and not sent from this site before (a bundle
 * that left from here holds them). At a relay the packages arrived in a completed bundle sent from
 * the previous site, so they wait here again for the next hop. At a site with archives, a package
 * waits once it is archived here but still lacks copies or sites (`archiveCopies`,
 * `archiveSites`): it moves on to the next archive site. An ARCHIVED package waits here when
 * another site reachable from here has nothing left to repair its bad copies from
 * (RepairForward), once per finding; so does a package not archived yet whose buffer copy at the
 * site it was sent to went bad before that site archived it (or, at a relay, sent it on).
 */
const waiting = (site: string, buffers: ReadonlyArray<string>, target: { readonly copies: number; readonly sites: number }) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The buffers' ids as values: PostgreSQL then knows from its statistics how few live copies
    // a buffer holds among the catalog's copies, and reads them by the location's index.
    if (buffers.length === 0) return []
    return yield* sql<BundlePlan.WaitingPackage>`
      select p.id, p.size_bytes, c.data_location_id as location_id,
             (extract(epoch from (now() - c.created_at)) * 1000)::float8 as waited_ms
      from physical_copy c
      join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
      join site s on s.id = l.site_id
      -- each copy's package by its key (the lateral limit keeps it a lookup): the site's buffers
      -- hold a few hundred packages, the packages table every one ever made
      cross join lateral (select * from raw_data_package p where p.id = c.raw_data_package_id limit 1) p
      where s.name = ${site} and c.data_location_id in ${sql.in(buffers)} and c.status = 'PRESENT'
        and p.size_bytes is not null and p.checksum is not null
        and ((p.status = 'in_progress'
          and (not exists (select 1 from data_location a where a.site_id = s.id and a.type = 'LONG_TERM_ARCHIVE')
            or exists (
              select 1 from (
                select count(*) as good, count(distinct al.site_id) as sites, bool_or(al.site_id = s.id) as here
                from physical_copy ac join data_location al on al.id = ac.data_location_id
                where ac.raw_data_package_id = p.id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
                  and ac.verified_at is not null and ac.checksum = p.checksum) g
              where g.here and (g.good < ${target.copies} or g.sites < ${target.sites})))
          and (not ${SentFrom.inBundleFrom(sql, sql`p`, sql`s.id`)}
            -- sent from here already, but its copy where it went turned bad before it was archived there
            or (c.verified_at is not null and c.checksum = p.checksum
              and ${RepairForward.neededFrom(sql, sql`p`, sql`s.id`)}
              and not ${RepairForward.forwardedFrom(sql, sql`p`, sql`s.id`)})))
        or (p.status = 'completed' and c.verified_at is not null and c.checksum = p.checksum
          and ${RepairForward.neededFrom(sql, sql`p`, sql`s.id`)}
          and not ${RepairForward.forwardedFrom(sql, sql`p`, sql`s.id`)}))
      order by c.created_at, p.id`
  })

/**
 * The size target of bundles sent along `route` (`BundlePlan.targetBytes`), from the figures
 * its ops-db row holds; `bundleTargetBytes` without a route.
 */
export const targetBytesFor = (
  policy: BundlePlan.SizeInputs,
  route: Pick<Routes.Route, "options" | "bandwidthLimit" | "maxConcurrentTransfers"> | undefined
): number =>
  BundlePlan.targetBytes(
    policy,
    route === undefined ? undefined : {
      measuredBandwidth: Routes.bytesOf(route.options.measuredBandwidth),
      bundleTransferTime: millisOf(route.options.bundleTransferTime),
      transferShare: Routes.transferShare(route)
    }
  )

const millisOf = (value: unknown): number | undefined => (typeof value === "number" && value > 0 ? value : undefined)

/**
 * The size target of bundles at `site`: bundles are cut before a route is chosen, so they are
 * sized for the route they leave on when all is well, the first by priority (`targetBytesFor`).
 */
export const targetBytes = (site: string, policy: BundlePlan.SizeInputs) =>
  Effect.map(Routes.leaving(site), (routes) => targetBytesFor(policy, routes[0]))

/**
 * Creates one planned bundle, scheduled, with its members, its two events (created, then
 * scheduled with its packages and bytes) and its job, in one statement (the queue must exist).
 */
const create = (site: string, b: BundlePlan.PlannedBundle) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ id: Ids.DataTransferPackageId }>`
      with bundle as (
        insert into data_transfer_package (relative_path, status) values (${`bundles/${site}/${randomUUID()}.tar`}, 'scheduled') returning id),
      members as (
        insert into data_transfer_package_member (data_transfer_package_id, raw_data_package_id)
        select b.id, p.id from bundle b, unnest(${b.packages}::uuid[]) as p(id) returning 1),
      steps as (
        select b.id, s.from_state, s.to_state, s.details from bundle b
        cross join (values (1, null::text, 'pending', '{}'::jsonb), (2, 'pending', 'scheduled', ${
          JSON.stringify({ packages: b.packages.length, bytes: b.sizeBytes })
        }::jsonb))
          as s(n, from_state, to_state, details)
        order by s.n),
      logged as (${
        EventLog.appendFrom(sql, {
          kind: "DataTransferPackage",
          rows: "steps",
          from: { column: "from_state" },
          to: { column: "to_state" },
          actor: `planner:${site}`,
          detailsColumn: "details"
        })
      }),
      job as (${
        JobStatements.sendFrom(sql, {
          queue: queueName(site, name),
          rows: "bundle",
          data: sql`jsonb_build_object('bundleId', r.id)`,
          singletonKey: sql`r.id::text`
        })
      })
      select id from bundle`
    return row!.id
  })

/**
 * Claims the site's bundles in one transaction under the site's bundling lock (each bundle's
 * packages, its scheduling and its job in one statement), then enqueues again the jobs of bundles claimed
 * here that a lost queue dropped. Returns how many jobs it enqueued. The waiting packages are
 * looked at first without the lock: a round with nothing to bundle opens no transaction, and its
 * reads go out together (each a round trip from a site far from the ops-db).
 */
export const claim = (site: string, routes?: ReadonlyArray<Routes.Route>) =>
  Effect.gen(function* () {
    const policy = yield* LifecyclePolicy
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const [target, buffers] = yield* Effect.all([
      routes === undefined ? targetBytes(site, policy) : Effect.succeed(targetBytesFor(policy, routes[0])),
      Effect.map(Sites.locationsOf(site, "BUFFER"), (ls) => ls.map((l) => l.id))
    ], { concurrency: 2 })
    const archive = { copies: policy.archiveCopies, sites: policy.archiveSites }
    // Re-derive jobs a lost queue would have dropped: bundles claimed here but not written for a while,
    // or at once when the queue holds no job of theirs at all (a restored ops-db, a wiped queue).
    const [looked, stale] = yield* Effect.all([
      waiting(site, buffers, archive),
      sql<{ id: Ids.DataTransferPackageId }>`
        select d.id from data_transfer_package d
        where d.status in ('scheduled', 'in_progress')
          and (d.updated_at < now() - interval '10 minutes' or ${noJobOf(sql, queueName(site, name), sql`d.id`)})
          -- a lookup per claimed bundle (a scalar subquery stays one): as \`not exists\`, PostgreSQL
          -- merged the few claimed bundles with every bundle copy ever made
          and (select c.id from physical_copy c where c.data_transfer_package_id = d.id
               and c.status not in ('DELETION_IN_PROGRESS', 'DELETED') limit 1) is null
          and d.relative_path like ${`bundles/${site}/%`}`
    ], { concurrency: 2 })
    const planned = BundlePlan.planBundles(looked, target, policy.bundleMaxWait).length > 0
    // a bundle is created with its job in one statement, which needs the queue (made once per process)
    if (planned) yield* jobs.ensureQueue(queueName(site, name), Routes.queues.bundle)
    const claimed = !planned ? 0 : yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* sql`select pg_advisory_xact_lock(hashtext(${`ccat.bundle:${site}`}))`
        // Under the lock, read again: another planner may have claimed them meanwhile.
        const bundles = BundlePlan.planBundles(yield* waiting(site, buffers, archive), target, policy.bundleMaxWait)
        for (const b of bundles) yield* create(site, b)
        return bundles.length
      })
    )
    if (stale.length > 0 && !planned) yield* jobs.ensureQueue(queueName(site, name), Routes.queues.bundle)
    const resent = yield* JobBatch.sendMany(queueName(site, name), stale.map((d) => ({ data: { bundleId: d.id }, singletonKey: d.id })))
    return claimed + resent
  })
