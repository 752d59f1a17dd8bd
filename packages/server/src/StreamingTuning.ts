/**
 * Imported first by the `ccat` entry point, for its side effect: V8's allocation-site
 * pretenuring off before any other module is evaluated (see `GcTuning` in `@ccat/core/node`
 * for the measurements).
 */
import { GcTuning } from "@ccat/core/node"

GcTuning.tuneForStreaming()
