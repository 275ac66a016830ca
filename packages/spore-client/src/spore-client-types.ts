import type { EventEmitter } from 'node:events'
import type { AbortOptions, ComponentBody, Endpoint, Logger, SignedSpore, Startable, TrustBundle } from '@mycelium/core-interfaces'
import type { BackoffOptions } from '@mycelium/core-utils'
import type { SporeRejectedError } from './errors.js'
import type { SporeSource, WatchableSporeSource } from './sources/source.js'
import type { VerifiedSpore } from './verify.js'

/** What the spore client is given, told, emits and answers: its public surface (the implementation is spore-client.ts). */
export interface SporeClientComponents {
  logger?: Logger
  /** Polled sources (bootstrap file, HTTPS, peers), in order of preference. */
  sources?: SporeSource[]
  /** The Spore Manager, followed once a "service/spore-manager" spore names it. */
  sporeManager?: WatchableSporeSource
}

export interface SporeClientInit {
  /** The node's network; spores of any other network are rejected. */
  networkId: string
  /**
   * The root of trust (from enrolment or provisioning). A verified newer
   * "bootstrap" spore may rotate it; the rotated bundle is cached.
   */
  trustBundle: TrustBundle
  /** Where the last verified set is kept. Unset: no cache (tests, tools). */
  cachePath?: string
  /** Accepted clock difference for issued_at/expires_at. @default DEFAULT_CLOCK_SLACK_MS */
  clockSlackMs?: number
  /** Interval between polls of the other sources while not following the Spore Manager. @default DEFAULT_REFRESH_INTERVAL_MS */
  refreshIntervalMs?: number
  /** Reconnection to the Spore Manager. @default DEFAULT_BACKOFF */
  reconnect?: BackoffOptions
  /** Clock, for tests. @default Date.now */
  now?: () => number
}

/** Accepted clock difference when checking issued_at/expires_at. */
export const DEFAULT_CLOCK_SLACK_MS = 30_000
/** Interval between polls of the sources while not following the Spore Manager. */
export const DEFAULT_REFRESH_INTERVAL_MS = 60_000

/**
 * - `starting`: before the cache is read;
 * - `sources`: no Spore Manager known, polling the bootstrap sources;
 * - `spore-manager`: following the Spore Manager's watch stream;
 * - `fallback`: the Spore Manager failed; serving the cache and polling the
 *   other sources while reconnecting with backoff.
 */
export type SporeClientMode = 'starting' | 'sources' | 'spore-manager' | 'fallback'

export interface SporeClientStatus {
  mode: SporeClientMode
  /** Source of the last accepted spore ("cache", "spore-manager", a file or URL). */
  activeSource: string
  reason: string
  sporeCount: number
  rejectedCount: number
  lastUpdateMs?: number
  /** Set when the cache was corrupt (and what was done about it). */
  cacheProblem?: string
}

export interface SporeClientEvents {
  /** Names whose spore changed (newer sequence accepted). */
  change: [names: string[]]
  'spore:rejected': [error: SporeRejectedError]
  status: [status: SporeClientStatus]
}

export interface RefreshResult {
  accepted: number
  rejected: number
  /** Sources that failed, with the error. */
  failures: Array<{ source: string; error: Error }>
}

/** The node's read-only window on the network's spores (see `createSporeClient`). */
export interface SporeClient extends EventEmitter<SporeClientEvents>, Startable {
  start(options?: AbortOptions): Promise<void>
  stop(options?: AbortOptions): Promise<void>
  status(): SporeClientStatus
  /**
   * A reconfiguration of the running client: the clock slack applies to the
   * next verification and expiry check, the refresh interval from the next
   * poll on. A negative slack or an interval not above 0 is an
   * InvalidConfigError and changes nothing (never silently ignored).
   */
  retune(t: { clockSlackMs?: number; refreshIntervalMs?: number; reconnectWindowMs?: number }): void
  /** The timing in force (for status and tests). */
  timing(): { clockSlackMs: number; refreshIntervalMs: number; reconnectWindowMs: number }
  /** Endpoints of a manager service, lowest priority value first (orderEndpoints, no zone, no shuffle). */
  resolveService(service: string): Endpoint[]
  /** Dynamic components the network offers. */
  listComponents(): ComponentBody[]
  /** The trust bundle in force and the seeds of the bootstrap spore. */
  bootstrap(): { trustBundle: TrustBundle; seeds: Endpoint[]; httpsUrls: string[] }
  /** Every verified, unexpired spore (what PeerAssist.GetSpores shares). */
  list(): VerifiedSpore[]
  /** Highest trusted sequence per name. */
  knownSequences(): Record<string, number>
  /** Verifies and takes in spores from `source`; rejections never change what is trusted. */
  ingest(batch: SignedSpore[], source: string): { accepted: string[]; rejected: SporeRejectedError[] }
  /** Polls every source once, in order; polls never overlap; stopping the client aborts one under way. */
  refresh(options?: AbortOptions): Promise<RefreshResult>
}
