import type { BackoffOptions } from '@mycelium/core-utils'

/** The whole artifact store (verified blobs + unpacked installs). @default 512 MiB */
export const DEFAULT_STORE_MAX_BYTES = 512 * 1024 * 1024
/** One artifact (download size). @default 64 MiB */
export const DEFAULT_ARTIFACT_MAX_BYTES = 64 * 1024 * 1024
/** A started component must answer Hello within this. @default 10 s */
export const DEFAULT_START_TIMEOUT_MS = 10_000
/** Health is polled (and logs, idle times, crashes checked) this often. @default 2 s */
export const DEFAULT_HEALTH_INTERVAL_MS = 2_000
/** One Health call. @default 2 s */
export const DEFAULT_HEALTH_TIMEOUT_MS = 2_000
/** After Stop, then after SIGTERM, a component gets this long to exit. @default 5 s */
export const DEFAULT_STOP_GRACE_MS = 5_000
/** More exits than `maxRestarts` within `windowMs` spend the budget: the component is FAILED until reassigned or a new version. */
export const DEFAULT_RESTART_BUDGET = { maxRestarts: 5, windowMs: 10 * 60_000 }
/** Wait before each restart after an exit: capped exponential, full jitter. */
export const DEFAULT_RESTART_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, multiplier: 2 }
/** An on-demand component unused this long is stopped (its spore may set its own). @default 60 s */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000
/** V8 heap limit for JavaScript components whose spore sets none. @default 64 MiB */
export const DEFAULT_HEAP_LIMIT_MB = 64
/** A fetch that failed for a reason other than bad bytes (network, server) is tried again after this. @default 30 s */
export const DEFAULT_INSTALL_RETRY_MS = 30_000
/** One artifact download. @default 60 s */
export const DEFAULT_FETCH_TIMEOUT_MS = 60_000
/** A component's log file is truncated in place past this (its lines are in the agent's log already). @default 10 MiB */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
/** Where cgroup v2 is looked for. @default /sys/fs/cgroup */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup'
/** PATH given to component processes (their only inherited variable). @default /usr/local/bin:/usr/bin:/bin */
export const DEFAULT_COMPONENT_PATH = '/usr/local/bin:/usr/bin:/bin'
