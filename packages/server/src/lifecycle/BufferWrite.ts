/**
 * Writing an archive (a package or a bundle) into a site's BUFFER: the candidates in priority
 * order that are writable and have room, and a failover loop that tries them in turn. A member
 * whose bytes are wrong, or a member list the packager cannot write at all (a reserved name, a
 * path that is also a folder), is the data's fault, not the buffer's: it ends the loop at once
 * and goes to the caller, which records it; any other failure moves on to the next buffer.
 */
import * as Effect from "effect/Effect"
import * as Packager from "./Packager.js"
import * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/**
 * The site's writable BUFFERs with room for `bytes` (by the location's capacity and, where the
 * driver can tell, its free space), lower priority first; `preferred` is tried before the rest.
 */
export const withRoom = (site: string, bytes: number, preferred?: Sites.Location) =>
  Effect.flatMap(Sites.locationsOf(site, "BUFFER"), (all) => withRoomAmong(all, bytes, preferred))

/**
 * `withRoom` among the site's BUFFERs as just read (`Sites.locationsOf(site, "BUFFER")`), for a
 * job that reads them beside its other reads, before it knows how many bytes it will write.
 */
export const withRoomAmong = (all: ReadonlyArray<Sites.Location>, bytes: number, preferred?: Sites.Location) =>
  Effect.gen(function* () {
    const storages = yield* Storages
    // the preferred location's switches as read now, not as the caller may have held them
    const ordered = preferred === undefined
      ? all
      : [all.find((l) => l.id === preferred.id) ?? preferred, ...all.filter((l) => l.id !== preferred.id)]
    const out: Array<Sites.Location> = []
    for (const loc of ordered) {
      if (!loc.writable) continue
      if (loc.capacityBytes !== null && (yield* Sites.usedBytes(loc.id)) + bytes > loc.capacityBytes) continue
      const space = yield* (yield* storages.of(loc)).space().pipe(Effect.option)
      if (space._tag === "Some" && space.value.freeBytes < bytes) continue
      out.push(loc)
    }
    return out
  })

/** What to do with the first buffer that took the archive, with faulty members, or with an archive that can never be written. */
export interface Handlers<A, B, C, E1, R1, E2, R2, E3, R3> {
  readonly written: (buffer: Sites.Location, written: Packager.Written) => Effect.Effect<A, E1, R1>
  readonly faulty: (error: Packager.PackagingError) => Effect.Effect<B, E2, R2>
  /** The member list cannot be archived by any buffer: retrying would fail the same way forever. */
  readonly invalid: (error: Packager.PackagingError) => Effect.Effect<C, E3, R3>
}

/** Writes into the first of `buffers` that takes the archive; fails with the last buffer's error. */
export const toFirst = <E, R, A, B, C, E1, R1, E2, R2, E3, R3>(
  label: string,
  buffers: ReadonlyArray<Sites.Location>,
  write: (buffer: Sites.Location) => Effect.Effect<Packager.Written, E, R>,
  handlers: Handlers<A, B, C, E1, R1, E2, R2, E3, R3>
) =>
  Effect.gen(function* () {
    let lastError: unknown = new Error(`${label}: no BUFFER is writable with room for it; it waits`)
    for (const buffer of buffers) {
      const result = yield* Effect.either(write(buffer))
      if (result._tag === "Right") return yield* handlers.written(buffer, result.right)
      const error = result.left
      if (error instanceof Packager.PackagingError && (error.reason === "Corrupt" || error.reason === "Missing")) {
        return yield* handlers.faulty(error)
      }
      if (error instanceof Packager.PackagingError && error.reason === "Invalid") return yield* handlers.invalid(error)
      lastError = error
      yield* Effect.logWarning(`${label}: buffer ${buffer.name} failed, trying the next`, error)
    }
    return yield* Effect.fail(lastError)
  })
