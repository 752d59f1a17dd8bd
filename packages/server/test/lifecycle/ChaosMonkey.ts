/**
 * The chaos test's monkey and its watch: which stages it aims at, how many kills it makes, the
 * kills themselves (aimed at a running job of a stage, then SIGKILL and a restart), and a bounded
 * wait that fails with the workers' output when a worker crashed on its own or time ran out.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { activeJobs, openJobs, type prng, type SiteWorker } from "./ChaosWorld.js"

const started = Date.now()

/** Seconds since this module was loaded, as a log prefix. */
export const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(1)} s]`

/** How many times the monkey kills a worker at most, and at least (it goes on while cleanup runs if need be). */
const kills = 40
/** How few kills the monkey may stop at once things are calm. */
export const minKills = 16
/** How many distinct stages the monkey must have cut mid-job before it may stop (short of `kills`). */
export const minStagesHit = 4

/** The stages the monkey aims at, and the site whose worker runs each here. */
const targets = [
  ["chile", "package"],
  ["chile", "bundle"],
  ["chile", "transfer"],
  ["chile", "cleanup"],
  ["cologne", "arrive"],
  ["cologne", "archive"],
  ["cologne", "staging"],
  ["cologne", "cleanup"],
  ["cologne", "audit"],
  ["cologne", "repair"]
] as const

/** Copies outside the archives that are not DELETED yet, per location and status: what a stuck cleanup shows. */
const liveCopies = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ location: string; status: string; n: number; oldest: string }>`
    select l.name as location, c.status::text as status, count(*)::int as n, min(c.updated_at)::text as oldest
    from physical_copy c join data_location l on l.id = c.data_location_id
    where l.type <> 'LONG_TERM_ARCHIVE' and c.status <> 'DELETED' group by l.name, c.status order by 1, 2`)

/** Polls `done` until it holds, failing with the workers' output after `ms` or when one crashed on its own. */
export const until = <E, R>(what: string, done: Effect.Effect<boolean, E, R>, workers: ReadonlyArray<SiteWorker>, ms: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    console.log(`${elapsed()} waiting for ${what}`)
    while (!(yield* done)) {
      for (const w of workers) {
        const crash = w.crashed
        if (crash !== undefined) return yield* Effect.dieMessage(`worker ${w.site} exited on its own while waiting for ${what}:\n${crash}`)
      }
      if (Date.now() > deadline) {
        const open = yield* openJobs
        const copies = yield* liveCopies
        return yield* Effect.dieMessage(
          `${elapsed()} ${what}: not reached within ${ms} ms; open jobs ${JSON.stringify(open)}; ` +
            `live copies outside the archives ${JSON.stringify(copies)}\n${workers.map((w) => w.tail()).join("\n")}`
        )
      }
      yield* Effect.sleep("250 millis")
    }
  })

/** A kill the monkey made: whom, what it aimed at, and which jobs were running at that instant. */
export interface Kill {
  readonly site: string
  readonly aim: string
  readonly hit: boolean
  readonly active: ReadonlyArray<string>
}

/**
 * The monkey: for each kill, aims at a stage of a shuffled rotation (one with work now, preferring
 * one it has not cut mid-job yet), waits (up to 4 s) until one of its jobs runs, lets it run a
 * random 0–60 ms more and SIGKILLs one of the site's worker processes (picked at random: either may
 * be running the job); when the stage has no work then, it kills at a random instant anyway. The
 * worker is restarted at once, in the background, while the monkey aims elsewhere. It stops after
 * `kills` kills, or once `calm()` says so and it made `minKills`, `minStagesHit` of them mid-job in
 * distinct stages: how many jobs a stage has at a given instant depends on the machine's speed, so
 * the spread is reached by going on, not by luck.
 */
export const monkey = (rng: ReturnType<typeof prng>, workers: Record<string, ReadonlyArray<SiteWorker>>, calm: () => boolean) =>
  Effect.gen(function* () {
    const ready = new Map<SiteWorker, Promise<void>>(Object.values(workers).flat().map((w) => [w, Promise.resolve()]))
    const done: Array<Kill> = []
    const stagesHit = new Set<string>()
    let rotation: Array<(typeof targets)[number]> = []
    while (done.length < kills && !(calm() && done.length >= minKills && stagesHit.size >= minStagesHit)) {
      if (rotation.length === 0) rotation = rng.shuffle(targets)
      // Of the stages not aimed at in this round yet, one with work queued or running now, one not cut yet first.
      const busy = new Set((yield* openJobs).map((j) => j.queue))
      const busyAt = (fresh: boolean) =>
        rotation.findIndex(([site, stage]) => busy.has(`${site}.${stage}`) && (!fresh || !stagesHit.has(`${site}.${stage}`)))
      const fresh = busyAt(true)
      const pick = fresh >= 0 ? fresh : Math.max(0, busyAt(false))
      const [site, stage] = rotation.splice(pick, 1)[0]!
      const victim = workers[site]![rng.int(0, workers[site]!.length - 1)]!
      yield* Effect.promise(() => ready.get(victim)!)
      const queue = `${site}.${stage}`
      const deadline = Date.now() + 4_000
      let seen = false
      while (!seen && Date.now() < deadline) {
        seen = (yield* activeJobs).some((j) => j.queue === queue)
        if (!seen) yield* Effect.sleep("10 millis")
      }
      yield* Effect.sleep(seen ? rng.int(0, 60) : rng.int(0, 800))
      const active = (yield* activeJobs).filter((j) => j.queue.startsWith(`${site}.`)).map((j) => `${j.queue}×${j.n}`)
      yield* Effect.promise(() => victim.kill())
      const hit = active.some((a) => a.startsWith(`${queue}×`))
      if (hit) stagesHit.add(queue)
      done.push({ site, aim: queue, hit, active })
      console.log(`${elapsed()} kill ${done.length}: ${queue}${hit ? "" : " (not running)"}; running ${active.join(", ") || "nothing"}`)
      const restarted = victim.start()
      ready.set(victim, restarted)
      // A failed start surfaces when the monkey next waits for this worker, not as an unhandled rejection.
      restarted.catch(() => undefined)
    }
    yield* Effect.promise(() => Promise.all(ready.values()))
    return done
  })
