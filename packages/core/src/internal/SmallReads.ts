/**
 * Small members read ahead of the archive writer by a few reader fibers. With many small
 * files, each file's open/read/close latency, not bandwidth or CPU, limits the pass, so several
 * reads run at once; a fixed set of readers (rather than a fiber per file) keeps the cost per
 * file at one read. Readers stay at most `window` members ahead of the writer, so at most
 * `window` small members are held at once, whatever the archive's size.
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

/** What the readers read. */
export interface Options<E> {
  /** Members in the archive. */
  readonly count: number
  /** Whether member `index` is read ahead (the others are streamed by the writer). */
  readonly isSmall: (index: number) => boolean
  /** Member `index`'s bytes. */
  readonly read: (index: number) => Effect.Effect<ReadonlyArray<Uint8Array>, E>
  /** How many members past the writer's may be read. */
  readonly window: number
  /** Reads running at once at most. */
  readonly readers: number
}

/** The reads, as the writer sees them. */
export interface SmallReads<E> {
  /** Member `index`'s read if it has ended (handed over once), else undefined. */
  readonly take: (index: number) => Exit.Exit<ReadonlyArray<Uint8Array>, E> | undefined
  /** Waits until member `index`'s read has ended. */
  readonly ended: (index: number) => Effect.Effect<void>
  /** The writer is at member `index` now: readers may go up to `index + window`. */
  readonly advance: (index: number) => void
}

/** Starts the readers; they stop when the scope closes. */
export const start = <E>(options: Options<E>): Effect.Effect<SmallReads<E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { count, isSmall, read, window } = options
    const done = new Map<number, Exit.Exit<ReadonlyArray<Uint8Array>, E>>()
    let cursor = 0
    let writerAt = 0
    let waiter: { readonly index: number; readonly resume: () => void } | undefined
    const parked: Array<{ readonly index: number; readonly resume: () => void }> = []
    const claim = () => {
      while (cursor < count && !isSmall(cursor)) cursor++
      return cursor < count ? cursor++ : undefined
    }
    const land = (index: number, exit: Exit.Exit<ReadonlyArray<Uint8Array>, E>) => {
      done.set(index, exit)
      if (waiter?.index !== index) return
      const w = waiter
      waiter = undefined
      w.resume()
    }
    const reader: Effect.Effect<void> = Effect.suspend(function loop(): Effect.Effect<void> {
      const index = claim()
      if (index === undefined) return Effect.void
      const run = Effect.flatMap(Effect.exit(read(index)), (exit) => {
        land(index, exit)
        return Effect.suspend(loop)
      })
      if (index < writerAt + window) return run
      return Effect.zipRight(Effect.async<void>((resume) => void parked.push({ index, resume: () => resume(Effect.void) })), run)
    })
    let smalls = 0
    for (let i = 0; i < count && smalls < options.readers; i++) if (isSmall(i)) smalls++
    for (let r = 0; r < smalls; r++) yield* Effect.forkScoped(reader)
    return {
      take: (index) => {
        const exit = done.get(index)
        if (exit !== undefined) done.delete(index)
        return exit
      },
      ended: (index) =>
        Effect.async<void>((resume) => {
          if (done.has(index)) return resume(Effect.void)
          waiter = { index, resume: () => resume(Effect.void) }
        }),
      advance: (index) => {
        writerAt = index
        for (let k = parked.length - 1; k >= 0; k--) {
          if (parked[k].index < writerAt + window) parked.splice(k, 1)[0].resume()
        }
      }
    }
  })
