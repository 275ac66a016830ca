import type { ComponentBody, Logger } from '@mycelium/core-interfaces'
import type { BackoffOptions } from '@mycelium/core-utils'

export interface ComponentManagerComponents {
  logger?: Logger
  /** The verified `component/<name>` spores (SporeClient.listComponents); unsigned or expired ones never appear. */
  catalogue: () => ComponentBody[]
}

export interface ComponentManagerInit {
  /** Root of the manager's files: `state` (assignments, specs, running processes), `store/`, `logs/`. */
  dir: string
  /** Where the unix sockets go (a path under 108 bytes). @default `<dir>/run` */
  runDir?: string
  /** The network CA (PEM) artifact servers must chain to; read at each fetch. @default the system CAs */
  caPem?: () => string | undefined
  /** @default DEFAULT_STORE_MAX_BYTES */
  storeMaxBytes?: number
  /** @default DEFAULT_ARTIFACT_MAX_BYTES */
  artifactMaxBytes?: number
  /** @default DEFAULT_START_TIMEOUT_MS */
  startTimeoutMs?: number
  /** @default DEFAULT_HEALTH_INTERVAL_MS */
  healthIntervalMs?: number
  /** @default DEFAULT_HEALTH_TIMEOUT_MS */
  healthTimeoutMs?: number
  /** @default DEFAULT_STOP_GRACE_MS */
  stopGraceMs?: number
  /** @default DEFAULT_RESTART_BUDGET */
  restartBudget?: { maxRestarts: number; windowMs: number }
  /** @default DEFAULT_RESTART_BACKOFF */
  restartBackoff?: BackoffOptions
  /** @default DEFAULT_IDLE_TIMEOUT_MS */
  idleTimeoutMs?: number
  /** @default DEFAULT_HEAP_LIMIT_MB */
  heapLimitMb?: number
  /** @default DEFAULT_INSTALL_RETRY_MS */
  installRetryMs?: number
  /** @default DEFAULT_FETCH_TIMEOUT_MS */
  fetchTimeoutMs?: number
  /** @default DEFAULT_LOG_MAX_BYTES */
  logMaxBytes?: number
  /** @default DEFAULT_CGROUP_ROOT */
  cgroupRoot?: string
  /** Node.js executable for JavaScript entries. @default process.execPath */
  nodePath?: string
  /** @default DEFAULT_COMPONENT_PATH */
  path?: string
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number
}

export interface ComponentManagerEvents {
  /** Something status shows changed (state, version, reason). */
  changed: []
}
