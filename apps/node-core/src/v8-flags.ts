import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * V8 flags the daemon (`node-core run`) sets for itself, trading peak
 * JavaScript speed for memory at rest: the agent is I/O-bound (a heartbeat a
 * second, a few RPCs a minute; signature checks run in OpenSSL), so optimised
 * machine code buys nothing a user sees, while the optimising compilers'
 * code, their feedback and the larger heap they let grow cost ~10 MB of RSS
 * (tools/bench footprint: idle RSS 72–86 MB → ~62 MB with these flags).
 * They cost no CPU measurable here (release artifact, same run: idle 547
 * ms/min with and without; manager churn 690 with, 760 ms/min without; start
 * → MANAGED 870 ms CPU median either way).
 *
 * - `--no-opt`, `--no-sparkplug`: interpret only (Ignition), no TurboFan or
 *   baseline code — the bulk of the saving.
 * - `--optimize-for-size`: V8 prefers a smaller heap (GCs a little earlier).
 * - `--bytecode-old-age=2`: bytecode of a function not run during 2 full
 *   collections is dropped (V8's default: 5), recompiled from source if it
 *   runs again. Most of the bundle's code runs once, at start (config, enrolment
 *   checks, wiring); at idle only the heartbeat path runs. Measured on the
 *   release artifact, 30 s idle in MANAGED: anon RSS 24.4 → 19.9 MB (idle RSS
 *   64.2 → 59.8 MB), `--bytecode-old-age=1` no better.
 *
 * `--lite-mode` (which also implies these) measured 2 MB lower but cannot be
 * set at run time (V8 aborts: it must be a node command-line flag); the
 * shipped unit may add it. Applied once, early, before the agent starts; a
 * flag given on node's own command line for the same setting wins.
 * @default applied by bin for `run` only (CLI commands are short-lived)
 */
export const DEFAULT_DAEMON_V8_FLAGS: readonly string[] = ['--no-opt', '--no-sparkplug', '--optimize-for-size', '--bytecode-old-age=2']

/** The V8 option a flag sets (`--no-opt`, `--opt` → `opt`; `-`/`_` alike). */
const v8Option = (flag: string): string =>
  flag
    .replace(/^--(no-)?/, '')
    .replace(/_/g, '-')
    .split('=')[0]!

/** Which of `flags` to set: those whose option node's own command line (`execArgv`) does not already set. */
export function daemonV8Flags(
  flags: readonly string[] = DEFAULT_DAEMON_V8_FLAGS,
  execArgv: readonly string[] = process.execArgv
): string[] {
  const given = new Set(execArgv.filter((a) => a.startsWith('--')).map(v8Option))
  return flags.filter((f) => !given.has(v8Option(f)))
}

/** Sets the daemon's V8 flags (see DEFAULT_DAEMON_V8_FLAGS); returns what it set. Process-wide: only bin calls it. */
export function applyDaemonV8Flags(flags: readonly string[] = DEFAULT_DAEMON_V8_FLAGS): string[] {
  const applied = daemonV8Flags(flags)
  if (applied.length > 0) setFlagsFromString(applied.join(' '))
  return applied
}

/**
 * How often the daemon checks whether its JavaScript heap has grown since its
 * last full collection. Why at all: each manager reconnection leaves a few
 * hundred KB of garbage (TLS, HTTP/2 sessions, channels) that lives long enough
 * to be promoted; V8 collects the old generation only when it reaches its limit
 * and keeps the freed pages afterwards, so RSS climbs in a sawtooth (measured:
 * 62 → 70 MB over 20 reconnections, 67 after V8's own collection, 70 again 20
 * later) while the live heap stays flat (+0.3 MB over 25 reconnections after
 * forced collections). A full collection when the heap has grown releases those
 * pages: RSS stays at the live size (tools/bench footprint).
 * @default 30 s
 */
export const DEFAULT_IDLE_GC_INTERVAL_MS = 30_000

/**
 * Growth of the heap (V8 total heap size) since the last collection that
 * triggers one: below it a collection would not return memory worth its pause.
 * @default 1 MiB
 */
export const DEFAULT_IDLE_GC_GROWTH_BYTES = 2 ** 20

/** The V8 flag startIdleGc sets (the launcher's warm code cache records the flags the daemon set). */
export const IDLE_GC_V8_FLAG = '--expose-gc'

/**
 * Starts the daemon's periodic heap check (see DEFAULT_IDLE_GC_INTERVAL_MS): a
 * full collection when the heap grew by `growthBytes` since the last one. The
 * collector is reached without node's `--expose-gc` (the flag is set at run
 * time; `gc` exists only in a context created after it). The timer does not
 * keep the process alive. Returns a stop function. Process-wide: only bin calls it.
 */
export function startIdleGc(intervalMs = DEFAULT_IDLE_GC_INTERVAL_MS, growthBytes = DEFAULT_IDLE_GC_GROWTH_BYTES): () => void {
  setFlagsFromString(IDLE_GC_V8_FLAG)
  let afterLast = getHeapStatistics().total_heap_size
  const timer = setInterval(() => {
    if (getHeapStatistics().total_heap_size - afterLast < growthBytes) return
    // A context made for the call and dropped after it: one kept for the daemon's life
    // would hold its global and builtins (0.15 MB of heap) to save ~2 ms per collection.
    const gc = runInNewContext('gc') as () => void
    gc()
    afterLast = getHeapStatistics().total_heap_size
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
