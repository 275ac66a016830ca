import { setFlagsFromString } from 'node:v8'

/**
 * V8 flags the daemon (`node-core run`) sets for itself, trading peak
 * JavaScript speed for memory at rest: the agent is I/O-bound (a heartbeat a
 * second, a few RPCs a minute; signature checks run in OpenSSL), so optimised
 * machine code buys nothing a user sees, while the optimising compilers'
 * code, their feedback and the larger heap they let grow cost ~10 MB of RSS
 * (tools/bench footprint: idle RSS 72–86 MB → ~62 MB with these flags).
 *
 * - `--no-opt`, `--no-sparkplug`: interpret only (Ignition), no TurboFan or
 *   baseline code — the bulk of the saving.
 * - `--optimize-for-size`: V8 prefers a smaller heap (GCs a little earlier).
 *
 * `--lite-mode` (which also implies these) measured 2 MB lower but cannot be
 * set at run time (V8 aborts: it must be a node command-line flag); the
 * shipped unit may add it. Applied once, early, before the agent starts; a
 * flag given on node's own command line for the same setting wins.
 * @default applied by bin for `run` only (CLI commands are short-lived)
 */
export const DEFAULT_DAEMON_V8_FLAGS: readonly string[] = ['--no-opt', '--no-sparkplug', '--optimize-for-size']

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
