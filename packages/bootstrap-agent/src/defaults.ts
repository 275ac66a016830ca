import { DEFAULT_BACKOFF, type BackoffOptions } from '@mycelium/core-utils'

/**
 * Every default the bootstrap agent applies, stated once. The `@default`
 * docs of BootstrapAgentInit name these constants, the NodeConfig proto
 * comments point here, and node-core's init mapping (`agentInitFrom`) fills
 * unset config keys from them.
 */

/** How long the node waits for the Network Manager to confirm a handoff before it keeps local control. */
export const DEFAULT_HANDOFF_DEADLINE_MS = 10_000

/** The heartbeat interval until a lease gives one. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000

/** How long a manager's config is tried (healthy) before it becomes the last-known-good. */
export const DEFAULT_CONFIG_CONFIRM_WINDOW_MS = 30_000

/** Heartbeats unanswered in a row before the manager link is declared down. */
export const DEFAULT_MISSED_ACKS_BEFORE_FALLBACK = 3

/** Phase transitions kept for status (and persisted). */
export const DEFAULT_HISTORY_SIZE = 50

/** Retries in FALLBACK (reconnection) and RECOVERY (identity): the house backoff. */
export const DEFAULT_RECONNECT: Required<BackoffOptions> = DEFAULT_BACKOFF

/** How often a failed certificate renewal is retried at most. */
export const DEFAULT_RENEW_RETRY_MS = 60_000

/**
 * The jitter source of retries and of the endpoint shuffle when the
 * composition injects none (node-core injects a crypto-based one).
 */
export const DEFAULT_RANDOM: () => number = Math.random
