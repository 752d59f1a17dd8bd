/**
 * Imported first by the `ccat` entry point, for its side effect: V8's allocation-site
 * pretenuring off before the command's work starts (the modules imported before it allocate
 * nothing that streams; see `GcTuning` in `@ccat/core/node` for the measurements). The built
 * `ccat` passes the flag on its `#!` line as well, so Node starts with it.
 */
import { GcTuning } from "@ccat/core/node"

GcTuning.tuneForStreaming()
