/**
 * A realistic synthetic ops-db for scale tests and benchmarks: a decade of observations on the
 * demo topology (Chile files and buffers, Cologne buffers, archives and stages), their files,
 * packages, bundles, transfer attempts, PhysicalCopies at every status and location, staging
 * requests and the event log, loaded through `COPY` into a database that ends with every
 * constraint, index and maintained count a per-row load would leave (`CatalogLoad.test.ts`
 * compares the two). Most of it is history (ARCHIVED, deleted at the buffers); a fixed live
 * tail sits at every stage (`CatalogPlan`). Deterministic: the same options give the same rows.
 *
 *   Catalog.load({ files: 1_000_000 })   // in an Effect with the ops-db's PgClient
 */
import { Topology } from "@ccat/core"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import pg from "pg"
import * as TopologySync from "../../src/TopologySync.js"
import * as Plan from "./CatalogPlan.js"
import * as Rows from "./CatalogRows.js"
import { copyRows, type Value } from "./CopyIn.js"
import { packageBytes } from "./CatalogState.js"

/** What to load. */
export interface Options extends Plan.PlanOptions {
  /**
   * Every file's events too (filing, packaging, deletion of its SOURCE copy: three per file), as
   * a real ops-db holds them. Default true; false keeps only packages', bundles' and transfers'
   * events, which loads in about half the time.
   */
  readonly fileEvents?: boolean
  /**
   * Whether a superuser load may switch row triggers off and prove what they keep afterwards
   * set-based (default true); false fires every trigger per row, as any other role's load does.
   */
  readonly fast?: boolean
  /**
   * `vacuum (analyze)` each table instead of `analyze` (default false): the visibility map and the
   * rows' hint bits set, as years of autovacuum leave a real ops-db. Right after a bulk load
   * autovacuum works through the new tables beside whatever is measured, and the first read of
   * each page writes its hint bits; a bench that measures a decade's catalog vacuums it first.
   */
  readonly vacuum?: boolean
  /** Called after each table with its rows and seconds. */
  readonly onTable?: (table: string, rows: number, seconds: number) => void
}

/** What was loaded. */
export interface Loaded {
  readonly plan: Plan.Plan
  readonly refs: Rows.Refs
  /** Rows per table, in load order. */
  readonly tables: ReadonlyArray<{ readonly table: string; readonly rows: number; readonly seconds: number }>
  readonly rows: number
  readonly seconds: number
  /** Whether row triggers fired during the load (false: superuser load, keys proved afterwards). */
  readonly triggers: boolean
}

const fixedId = (seed: number, kind: number, i: number) => Plan.uuid(seed, 200 + kind, i)

/** Observatory, instruments, modules, programs, obs units and accounts: a few rows each. */
const hierarchy = (client: pg.Client, seed: number) =>
  Effect.promise(async () => {
    const q = (text: string, values: ReadonlyArray<unknown>) => client.query(text, values as Array<unknown>)
    const observatory = fixedId(seed, 0, 0)
    const telescope = fixedId(seed, 1, 0)
    await q(`insert into observatory (id, name) values ($1, $2)`, [observatory, `CCAT scale ${seed}`])
    await q(`insert into telescope (id, observatory_id, name) values ($1, $2, 'FYST')`, [telescope, observatory])
    const moduleIds: Array<string> = []
    const obsUnitIds: Array<Array<string>> = []
    const programs = 20
    for (let p = 0; p < programs; p++) {
      await q(`insert into observing_program (id, name, title) values ($1, $2, $3)`, [
        fixedId(seed, 2, p),
        `scale-program-${seed}-${p}`,
        `Survey ${p}`
      ])
    }
    for (const [k, instrument] of Plan.instruments.entries()) {
      const instrumentId = fixedId(seed, 3, k)
      await q(`insert into instrument (id, telescope_id, name) values ($1, $2, $3)`, [instrumentId, telescope, instrument.name])
      for (const m of instrument.modules) {
        const id = fixedId(seed, 4, moduleIds.length)
        await q(`insert into instrument_module (id, instrument_id, name) values ($1, $2, $3)`, [id, instrumentId, m])
        moduleIds.push(id)
      }
      const units: Array<string> = []
      for (let u = 0; u < 100; u++) {
        const id = fixedId(seed, 5, k * 100 + u)
        await q(
          `insert into obs_unit (id, observing_program_id, instrument_id, name, target, planned_duration_seconds) values ($1, $2, $3, $4, $5, 600)`,
          [id, fixedId(seed, 2, u % programs), instrumentId, `${instrument.name}-field-${u}`, `field-${u}`]
        )
        units.push(id)
      }
      obsUnitIds.push(units)
    }
    const scientistId = fixedId(seed, 6, 0)
    await q(`insert into account (id, name, display_name, role) values ($1, $2, 'Scale scientist', 'scientist')`, [
      scientistId,
      `scale-sci-${seed}`
    ])
    return { moduleIds, obsUnitIds, scientistId }
  })

const open = async (config: PgClient.PgClientConfig) => {
  const client = new pg.Client(
    config.url !== undefined
      ? { connectionString: Redacted.value(config.url) }
      : {
        host: config.host,
        port: config.port,
        database: config.database,
        user: config.username,
        password: config.password && Redacted.value(config.password)
      }
  )
  client.on("error", () => undefined)
  await client.connect()
  return client
}

const connect = (config: PgClient.PgClientConfig) =>
  Effect.acquireRelease(Effect.promise(() => open(config)), (client) => Effect.promise(() => client.end()))

/**
 * One anti-join per foreign key of the loaded tables (what the per-row checks would have done,
 * set-based): each counts the rows without a parent, which must be none.
 */
const foreignKeyProofs = (client: pg.Client, tables: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const fks = await client.query<{ name: string; child: string; parent: string; cols: Array<string>; refs: Array<string> }>(
      `select k.conname as name, c.relname as child, p.relname as parent,
         array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i) join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i) as cols,
         array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i) join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i) as refs
       from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class p on p.oid = k.confrelid
       where k.contype = 'f' and c.relname = any($1) and k.conparentid = 0`,
      [tables as Array<string>]
    )
    return fks.rows.map((fk) => ({
      name: fk.name,
      child: fk.child,
      query: `select count(*)::int8::text as n from ${fk.child} x where ${fk.cols.map((c) => `x.${c} is not null`).join(" and ")}
        and not exists (select 1 from ${fk.parent} y where ${fk.cols.map((c, i) => `y.${fk.refs[i]} = x.${c}`).join(" and ")})`
    }))
  })

/**
 * Runs independent statements on `connections` connections of their own, each taking the next
 * from the queue (longest first is the caller's order); returns each one's seconds.
 */
const pool = (config: PgClient.PgClientConfig, connections: number, tasks: ReadonlyArray<(on: pg.Client) => Promise<void>>) =>
  Effect.promise(async () => {
    const queue = [...tasks]
    const worker = async () => {
      const on = await open(config)
      try {
        // The anti-joins hash a big table: memory for it rather than batches on disk (two sessions).
        await on.query("set work_mem = '256MB'")
        for (let task = queue.shift(); task !== undefined; task = queue.shift()) await task(on)
      } finally {
        await on.end()
      }
    }
    await Promise.all(Array.from({ length: Math.min(connections, tasks.length) }, worker))
  })

/** Whether this session may switch off triggers (`session_replication_role`, superusers only). */
const canSkipTriggers = (client: pg.Client) =>
  Effect.promise(async () =>
    (await client.query<{ ok: boolean }>(`select rolsuper as ok from pg_roles where rolname = current_user`)).rows[0]?.ok === true
  )

/**
 * Loads the catalog into the current ops-db (migrated, and without a catalog of the same seed):
 * the demo topology, then every table through `COPY`, then `analyze`. As a superuser the load
 * runs with row triggers off (`session_replication_role = replica`; the domains' checks still
 * run per row, cheaply since migration 0028) on five connections at once (the small tables, the
 * files, the copies, the events in two halves), then, on two connections, proves every foreign
 * key set-based (one statement per key; the load fails on the first that breaks),
 * recounts the trigger-kept counts (`ops_count_rebuild()`, what the statement triggers would
 * have summed) and analyses each table. Safe because the database is the loader's alone while
 * it loads (a fresh one), and nothing is left unproved. Any other role, or `fast: false`, loads
 * in one transaction, parents first, with every trigger and check firing: slower, the same rows.
 */
export const load = (options: Options) =>
  Effect.gen(function* () {
    const started = performance.now()
    const sql = yield* PgClient.PgClient
    const plan = Plan.make(options)
    // What settles the loaded tables, and its line in the load's table of timings.
    const settle = options.vacuum === true ? "vacuum (analyze)" : "analyze"
    const settled = `(${settle})`
    yield* TopologySync.sync(Topology.demo("/var/tmp/ccat-scale"))
    const locs = yield* sql<{ name: string; id: string }>`select name, id from data_location`
    const loc = (name: string) => {
      const l = locs.find((x) => x.name === name)
      if (l === undefined) throw new Error(`the demo topology has no location ${name}`)
      return l.id
    }
    const [route] = yield* sql<{ id: string; adapter: string }>`
      select r.id, r.adapter from route r join site f on f.id = r.from_site_id join site t on t.id = r.to_site_id
      where f.name = 'chile' and t.name = 'cologne'`
    const client = yield* connect(sql.config)
    const tables: Array<{ table: string; rows: number; seconds: number }> = []
    const skipTriggers = options.fast !== false && (yield* canSkipTriggers(client))
    const h = yield* hierarchy(client, plan.seed)
    const refs: Rows.Refs = {
      locations: {
        chileSource: loc("chile-source"),
        chileBuffer: loc("chile-buffer"),
        cologneBuffer: loc("cologne-buffer"),
        cologneArchive: loc("cologne-archive"),
        processing: loc("cologne-processing")
      },
      routeId: route!.id,
      adapter: route!.adapter,
      ...h
    }
    const bytes = packageBytes(plan)
    // The event log's years (migration 0018) over the decade the catalog spans, so COPY puts
    // each event straight into its year rather than into the default partition.
    yield* Effect.promise(async () => {
      const fn = await client.query<{ ok: boolean }>(`select to_regproc('history_partitions_ensure') is not null as ok`)
      if (fn.rows[0]?.ok === true) {
        await client.query(`select history_partitions_ensure($1::timestamptz, 1)`, [new Date(Plan.eouStart(plan, 0))])
      }
    })
    const copy = (on: pg.Client, table: string, columns: ReadonlyArray<string>, rows: Iterable<ReadonlyArray<Value>>) =>
      Effect.promise(async () => {
        const t0 = performance.now()
        const n = await copyRows(on, table, columns, rows)
        const seconds = (performance.now() - t0) / 1000
        tables.push({ table, rows: n, seconds })
        options.onTable?.(table, n, seconds)
      })
    // Streams of tables, each in key order; with triggers on they run one after another in one
    // transaction (parents first), with triggers off each stream has its own connection.
    const streams: ReadonlyArray<ReadonlyArray<(on: pg.Client) => Effect.Effect<void>>> = [
      [
        (on) => copy(on, "executed_obs_unit", Rows.eouColumns, Rows.eouRows(plan, refs)),
        (on) => copy(on, "raw_data_package", Rows.packageColumns, Rows.packageRows(plan, refs, bytes)),
        (on) => copy(on, "data_transfer_package", Rows.bundleColumns, Rows.bundleRows(plan, bytes)),
        (on) => copy(on, "data_transfer_package_member", Rows.memberColumns, Rows.memberRows(plan)),
        (on) => copy(on, "data_transfer", Rows.transferColumns, Rows.transferRows(plan, refs, bytes)),
        (on) => copy(on, "staging_request", Rows.stagingColumns, Rows.stagingRows(plan, refs)),
        (on) => copy(on, "staging_request_item", Rows.stagingItemColumns, Rows.stagingItemRows(plan))
      ],
      [(on) => copy(on, "raw_data_file", Rows.fileColumns, Rows.fileRows(plan, refs))],
      [(on) => copy(on, "physical_copy", Rows.copyColumns, Rows.copyRows(plan, refs, bytes))],
      // The per-file events (three a file) are the biggest table: two streams of half the packages each.
      [(on) => copy(on, "event_log", Rows.eventColumns, Rows.eventRows(plan, options.fileEvents ?? true, [0, 2]))],
      [(on) => copy(on, "event_log", Rows.eventColumns, Rows.eventRows(plan, options.fileEvents ?? true, [1, 2]))]
    ]
    if (skipTriggers) {
      yield* Effect.forEach(streams, (stream) =>
        Effect.gen(function* () {
          const on = yield* connect(sql.config)
          yield* Effect.promise(() => on.query("begin"))
          yield* Effect.promise(() => on.query("set local session_replication_role = replica"))
          for (const step of stream) yield* step(on)
          yield* Effect.promise(() => on.query("commit"))
        }).pipe(Effect.scoped), { concurrency: "unbounded", discard: true })
      // After the load, on two connections (a core each), longest first: the proofs of every
      // foreign key, the trigger-kept counts recounted set-based, and each table's statistics.
      // None reads what another writes but the counts, analysed last.
      const t0 = performance.now()
      const busy = new Map<string, number>()
      const timed = (what: string, f: (on: pg.Client) => Promise<void>) => async (on: pg.Client) => {
        const s = performance.now()
        await f(on)
        busy.set(what, (busy.get(what) ?? 0) + (performance.now() - s) / 1000)
      }
      const fks = yield* foreignKeyProofs(client, tables.map((t) => t.table))
      const broken: Array<string> = []
      const recount = yield* Effect.promise(async () =>
        (await client.query<{ ok: boolean }>(`select to_regproc('ops_count_rebuild') is not null as ok`)).rows[0]?.ok === true
      )
      const analysed = yield* Effect.promise(async () =>
        (await client.query<{ rel: string }>(
          `select format('%I.%I', n.nspname, c.relname) as rel from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and not c.relispartition and n.nspname = current_schema() and not ($1 and c.relname in ('ops_count', 'ops_histogram'))
            order by pg_relation_size(c.oid) + coalesce((select sum(pg_relation_size(i.inhrelid)) from pg_inherits i where i.inhparent = c.oid), 0) desc`,
          [recount]
        )).rows.map((r) => r.rel)
      )
      const big = new Set(["raw_data_file", "physical_copy", "event_log"])
      yield* pool(sql.config, 2, [
        ...(recount ? [timed("(counters rebuilt)", async (on) => void (await on.query(`select ops_count_rebuild()`)))] : []),
        ...[...fks].sort((a, b) => Number(big.has(b.child)) - Number(big.has(a.child))).map((fk) =>
          timed(`(${fks.length} foreign keys proved)`, async (on) => {
            const n = Number((await on.query<{ n: string }>(fk.query)).rows[0]!.n)
            if (n > 0) broken.push(`the catalog broke foreign key ${fk.name}: ${n} rows of ${fk.child} have no parent`)
          })
        ),
        ...analysed.map((rel) => timed(settled, async (on) => void (await on.query(`${settle} ${rel}`))))
      ])
      if (broken.length > 0) return yield* Effect.dieMessage(broken.join("; "))
      const a0 = performance.now()
      if (recount) yield* Effect.promise(() => client.query(`${settle} ops_count, ops_histogram`))
      busy.set(settled, (busy.get(settled) ?? 0) + (performance.now() - a0) / 1000)
      for (const [what, seconds] of busy) tables.push({ table: what, rows: 0, seconds })
      tables.push({ table: "(all of the above, 2 connections)", rows: 0, seconds: (performance.now() - t0) / 1000 })
    } else {
      yield* Effect.promise(() => client.query("begin"))
      for (const stream of [streams[0]!.slice(0, 2), streams[1]!, streams[0]!.slice(2), streams[2]!, streams[3]!, streams[4]!]) {
        for (const step of stream) yield* step(client)
      }
      yield* Effect.promise(() => client.query("commit"))
      const t0 = performance.now()
      yield* Effect.promise(() => client.query(settle))
      tables.push({ table: settled, rows: 0, seconds: (performance.now() - t0) / 1000 })
    }
    return {
      plan,
      refs,
      tables,
      rows: tables.reduce((a, t) => a + t.rows, 0),
      seconds: (performance.now() - started) / 1000,
      triggers: !skipTriggers
    } satisfies Loaded
  }).pipe(Effect.scoped, Effect.withSpan("Catalog.load"))
