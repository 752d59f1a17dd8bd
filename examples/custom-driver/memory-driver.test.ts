/**
 * The example custom driver passes the same conformance suite as the built-in drivers. This is
 * all an integrator's test needs; add cases only for what is specific to your driver.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import * as MemoryDriver from "./MemoryDriver.js"

StorageDriverSuite.run({
  name: "example: in-memory driver",
  layer: MemoryDriver.layer(),
  // it holds objects in memory, so its "large" object stays small and memory is not bounded
  largeBytes: 64 * 1024 * 1024,
  boundedMemory: false
})
