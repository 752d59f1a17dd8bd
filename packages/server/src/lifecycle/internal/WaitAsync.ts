/**
 * `Atomics.waitAsync` with its type: Node has had it since 16, but its type is in lib es2024,
 * newer than this project's lib. The hashing offloads wait on their workers' counters with it.
 */

/** Waits on a shared counter without blocking this thread: at once when it already moved on. */
export const waitAsync = (Atomics as unknown as {
  readonly waitAsync: (
    array: Int32Array,
    index: number,
    value: number,
    timeout: number
  ) => { readonly async: false; readonly value: string } | { readonly async: true; readonly value: Promise<string> }
}).waitAsync
