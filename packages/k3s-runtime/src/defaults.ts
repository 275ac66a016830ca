/** Every default the K3s runtime applies, stated once (the `@default` docs name these). */

/** SIGTERM → SIGKILL grace when K3s is stopped for a restart. */
export const DEFAULT_K3S_STOP_TIMEOUT_MS = 30_000
/** How long the supervisor waits for K3s to be gone after SIGKILL. */
export const K3S_KILL_WAIT_MS = 5000
/** How often a K3s we did not spawn (adopted) is checked for life. */
export const DEFAULT_K3S_MONITOR_INTERVAL_MS = 1000
/** How often a starting K3s is probed for readiness. */
export const DEFAULT_K3S_PROBE_INTERVAL_MS = 2000
/** How often the CRI is asked for the workload list. */
export const DEFAULT_WORKLOADS_INTERVAL_MS = 5000
