import { EventEmitter, once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  InvalidConfigError,
  InvalidInputError,
  isAbortError,
  isUnavailableError,
  MAX_TIMER_MS,
  silentLogger,
  type AbortOptions,
  type ComponentBody,
  type Endpoint,
  type Logger,
  type SignedSpore,
  Spore,
  type TrustBundle,
  SERVICE_NAMES
} from '@mycelium/core-interfaces'
import { anySignal, Backoff, coalescing, type BackoffOptions } from '@mycelium/core-utils'
import { MAX_SPORES_PER_BUNDLE } from './bundle-format.js'
import { loadCache, saveCache, type CachedSpore } from './cache.js'
import { isRateLimitedError, isSporeRejectedError, MalformedSporeError, type SporeRejectedError } from './errors.js'
import type { SporeSource, WatchableSporeSource } from './sources/source.js'
import { trustedSporeKeys, type TrustedKeys } from './trust.js'
import { verifySpore, type TrustMark, type VerifiedSpore } from './verify.js'
import { orderEndpoints } from './endpoint-order.js'
import {
  DEFAULT_CLOCK_SLACK_MS,
  DEFAULT_REFRESH_INTERVAL_MS,
  type RefreshResult,
  type SporeClient,
  type SporeClientComponents,
  type SporeClientEvents,
  type SporeClientInit,
  type SporeClientStatus
} from './spore-client-types.js'

const SERVICE_PREFIX = 'service/'
const COMPONENT_PREFIX = 'component/'

class DefaultSporeClient extends EventEmitter<SporeClientEvents> implements SporeClient {
  private readonly log: Logger
  private readonly sources: SporeSource[]
  private readonly sporeManager?: WatchableSporeSource
  private readonly networkId: string
  private clockSlackMs: number
  private refreshIntervalMs: number
  /**
   * The fleet reconnect window the node's Network Manager advertised: a watch
   * redial is spread over it, so a fleet whose Spore Manager restarted does
   * not come back to it all at once (0: the backoff alone).
   */
  private reconnectWindowMs = 0
  private readonly now: () => number
  private readonly reconnect: BackoffOptions
  private readonly cachePath?: string

  private trustBundle: TrustBundle
  private trust: TrustedKeys
  private readonly spores = new Map<string, VerifiedSpore>()
  private readonly marks = new Map<string, TrustMark>()
  /** The trust bundle in force when each spore was accepted (what the cache re-verifies it under). */
  private readonly acceptedUnder = new Map<string, TrustBundle>()
  private state: SporeClientStatus = { mode: 'starting', activeSource: 'none', reason: 'not started', sporeCount: 0, rejectedCount: 0 }

  private controller?: AbortController
  private loops: Array<Promise<void>> = []
  private saving: Promise<void> = Promise.resolve()

  constructor(components: SporeClientComponents, init: SporeClientInit) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('spore-client')
    this.sources = components.sources ?? []
    this.sporeManager = components.sporeManager
    this.networkId = init.networkId
    this.trustBundle = init.trustBundle
    // Validated once, here: a bad root of trust is a configuration error.
    this.trust = trustedSporeKeys(init.trustBundle, init.networkId, 'SporeClientInit.trustBundle')
    this.clockSlackMs = init.clockSlackMs ?? DEFAULT_CLOCK_SLACK_MS
    this.refreshIntervalMs = init.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS
    // A timer holds at most 2^31-1 ms; beyond it setTimeout fires after 1 ms (a poll storm).
    if (!(this.refreshIntervalMs >= 1 && this.refreshIntervalMs <= MAX_TIMER_MS)) {
      throw new InvalidConfigError(`must be 1 to ${MAX_TIMER_MS} ms, not ${this.refreshIntervalMs}`, 'SporeClientInit.refreshIntervalMs')
    }
    if (!(this.clockSlackMs >= 0 && this.clockSlackMs <= MAX_TIMER_MS)) {
      throw new InvalidConfigError(`must be 0 to ${MAX_TIMER_MS} ms, not ${this.clockSlackMs}`, 'SporeClientInit.clockSlackMs')
    }
    this.now = init.now ?? Date.now
    this.reconnect = init.reconnect ?? {}
    this.cachePath = init.cachePath
  }

  isStarted(): boolean {
    return this.controller != null
  }

  /** Reads the cache (never blocks on the network), then starts polling and following in the background. */
  async start(): Promise<void> {
    if (this.controller != null) return
    const controller = new AbortController()
    this.controller = controller
    const signal = controller.signal
    try {
      await this.loadCache()
    } catch (err) {
      // All or nothing: not started, so the next start() really starts.
      if (this.controller === controller) this.controller = undefined
      throw err
    }
    if (signal.aborted) return
    this.setStatus({ mode: 'sources', reason: this.spores.size > 0 ? 'serving cached spores' : 'no spores yet' })
    this.loops = [this.pollLoop(signal), this.followLoop(signal)]
  }

  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    await Promise.allSettled(this.loops)
    this.loops = []
    for (const source of [...this.sources, this.sporeManager]) source?.close?.()
    await this.saving
  }

  status(): SporeClientStatus {
    return { ...this.state }
  }

  /**
   * A reconfiguration of the running client: the clock slack applies to the
   * next verification and expiry check, the refresh interval from the next
   * poll on, the fleet reconnect window from the watch's next redial. A
   * negative slack or window, or an interval not above 0, is an
   * InvalidConfigError and changes nothing (never silently ignored).
   */
  retune(t: { clockSlackMs?: number; refreshIntervalMs?: number; reconnectWindowMs?: number }): void {
    if (t.clockSlackMs != null && !(Number.isFinite(t.clockSlackMs) && t.clockSlackMs >= 0))
      throw new InvalidConfigError(`${t.clockSlackMs} ms is not a clock slack (must be 0 or more)`, 'spore client clockSlackMs')
    if (t.refreshIntervalMs != null && !(Number.isFinite(t.refreshIntervalMs) && t.refreshIntervalMs > 0))
      throw new InvalidConfigError(
        `${t.refreshIntervalMs} ms is not a refresh interval (must be above 0)`,
        'spore client refreshIntervalMs'
      )
    if (t.reconnectWindowMs != null && !(t.reconnectWindowMs >= 0 && t.reconnectWindowMs <= MAX_TIMER_MS))
      throw new InvalidConfigError(
        `${t.reconnectWindowMs} ms is not a reconnect window (must be 0 to ${MAX_TIMER_MS})`,
        'spore client reconnectWindowMs'
      )
    if (t.clockSlackMs != null) this.clockSlackMs = t.clockSlackMs
    if (t.refreshIntervalMs != null) this.refreshIntervalMs = t.refreshIntervalMs
    if (t.reconnectWindowMs != null) this.reconnectWindowMs = t.reconnectWindowMs
  }

  /** The timing in force (for status and tests). */
  timing(): { clockSlackMs: number; refreshIntervalMs: number; reconnectWindowMs: number } {
    return { clockSlackMs: this.clockSlackMs, refreshIntervalMs: this.refreshIntervalMs, reconnectWindowMs: this.reconnectWindowMs }
  }

  /** Endpoints of a manager service, lowest priority value first (orderEndpoints, no zone, no shuffle). */
  resolveService(service: string): Endpoint[] {
    const spore = this.current(`${SERVICE_PREFIX}${service}`)
    if (spore?.spore.body?.$case !== 'service') return []
    return orderEndpoints(spore.spore.body.value.endpoints)
  }

  /** Dynamic components the network offers. */
  listComponents(): ComponentBody[] {
    const out: ComponentBody[] = []
    for (const spore of this.list()) {
      if (spore.name.startsWith(COMPONENT_PREFIX) && spore.spore.body?.$case === 'component') out.push(spore.spore.body.value)
    }
    return out
  }

  /** The trust bundle in force and the seeds of the bootstrap spore. */
  bootstrap(): { trustBundle: TrustBundle; seeds: Endpoint[]; httpsUrls: string[] } {
    const spore = this.current('bootstrap')
    const body = spore?.spore.body?.$case === 'bootstrap' ? spore.spore.body.value : undefined
    return { trustBundle: this.trustBundle, seeds: body?.seeds ?? [], httpsUrls: body?.httpsUrls ?? [] }
  }

  /** Every verified, unexpired spore (what PeerAssist.GetSpores shares). */
  list(): VerifiedSpore[] {
    return [...this.spores.values()].filter((s) => this.isLive(s))
  }

  /** Highest trusted sequence per name. */
  knownSequences(): Record<string, number> {
    return Object.fromEntries([...this.marks].map(([name, mark]) => [name, mark.sequence]))
  }

  /**
   * Verifies and takes in spores from `source`. Returns what was accepted and
   * rejected; rejections never change what is trusted.
   */
  ingest(batch: SignedSpore[], source: string): { accepted: string[]; rejected: SporeRejectedError[] } {
    if (batch.length > MAX_SPORES_PER_BUNDLE) {
      // One refusal for the whole batch: verifying and logging each of
      // hundreds of thousands of records would stall the event loop.
      throw new InvalidInputError(
        `${batch.length} spores in one batch, more than the ${MAX_SPORES_PER_BUNDLE} allowed (refused as a whole)`,
        source
      )
    }
    const accepted: string[] = []
    const rejected: SporeRejectedError[] = []
    // A new bootstrap spore may rotate the keys the others are signed with.
    const ordered = [...batch].sort((a, b) => Number(isBootstrapBytes(b)) - Number(isBootstrapBytes(a)))
    for (const signed of ordered) {
      try {
        const { verified, unchanged } = verifySpore(signed, {
          trust: this.trust,
          nowMs: this.now(),
          clockSlackMs: this.clockSlackMs,
          source,
          markFor: (name) => this.marks.get(name)
        })
        if (unchanged && this.spores.has(verified.name)) continue
        const under = unchanged ? (this.acceptedUnder.get(verified.name) ?? this.trustBundle) : this.trustBundle
        if (verified.spore.body?.$case === 'bootstrap') this.rotateTrust(verified)
        this.acceptedUnder.set(verified.name, under)
        this.spores.set(verified.name, verified)
        this.marks.set(verified.name, { sequence: verified.sequence, digest: verified.digest })
        accepted.push(verified.name)
      } catch (err) {
        if (!isSporeRejectedError(err)) throw err
        rejected.push(err)
        this.log.warn('spore rejected', { sporeName: err.sporeName, source: err.source, reason: err.reason, detail: err.detail })
        this.emit('spore:rejected', err)
      }
    }
    if (accepted.length > 0 || rejected.length > 0) {
      this.setStatus({
        sporeCount: this.spores.size,
        rejectedCount: this.state.rejectedCount + rejected.length,
        ...(accepted.length > 0 ? { activeSource: source, lastUpdateMs: this.now() } : {})
      })
    }
    if (accepted.length > 0) {
      this.log.info('spores accepted', { source, names: accepted })
      this.persist()
      this.emit('change', accepted)
    }
    return { accepted, rejected }
  }

  /**
   * Polls every source once, in order. Polls never overlap; a call during a
   * poll gets the next one, which starts after it. Stopping the client
   * aborts a poll under way.
   */
  refresh(options: AbortOptions = {}): Promise<RefreshResult> {
    if (options.signal == null && this.controller == null) return this.runRefresh(undefined)
    // anySignal, not AbortSignal.any: the client's own signal lives as long as the client (see anySignal).
    const any = anySignal([options.signal, this.controller?.signal])
    return this.runRefresh(any.signal).finally(any.dispose)
  }

  private readonly runRefresh = coalescing((signal?: AbortSignal) => this.pollSources({ signal }))

  private async pollSources(options: AbortOptions): Promise<RefreshResult> {
    const result: RefreshResult = { accepted: 0, rejected: 0, failures: [] }
    for (const source of this.sources) {
      if (options.signal?.aborted === true) break
      try {
        const batch = await source.fetch({ signal: options.signal, knownSequences: this.knownSequences() })
        const { accepted, rejected } = this.ingest(batch, source.id)
        result.accepted += accepted.length
        result.rejected += rejected.length
      } catch (err) {
        if (isAbortError(err)) break
        result.failures.push({ source: source.id, error: err as Error })
        this.log.warn('spore source failed', { source: source.id, err })
      }
    }
    return result
  }

  private current(name: string): VerifiedSpore | undefined {
    const spore = this.spores.get(name)
    return spore != null && this.isLive(spore) ? spore : undefined
  }

  private isLive(spore: VerifiedSpore): boolean {
    const expires = spore.spore.expiresAt?.getTime() ?? 0
    return this.now() - this.clockSlackMs <= expires
  }

  private rotateTrust(verified: VerifiedSpore): void {
    if (verified.spore.body?.$case !== 'bootstrap') return
    const bundle = verified.spore.body.value.trustBundle!
    try {
      this.trust = trustedSporeKeys(bundle, this.networkId, `spore "bootstrap" seq ${verified.sequence} trust bundle`)
    } catch (err) {
      throw new MalformedSporeError(verified.name, verified.source, (err as Error).message)
    }
    this.trustBundle = bundle
  }

  private setStatus(patch: Partial<SporeClientStatus>): void {
    const before = this.state
    this.state = { ...this.state, ...patch }
    if (before.mode !== this.state.mode || before.reason !== this.state.reason) {
      this.log.info('spore client status', { mode: this.state.mode, reason: this.state.reason })
    }
    this.emit('status', this.status())
  }

  private async loadCache(): Promise<void> {
    if (this.cachePath == null) return
    try {
      const loaded = await loadCache(this.cachePath)
      if (loaded == null) return
      if (loaded.recoveredReason != null) {
        const problem = `cache ${this.cachePath} unusable (${loaded.recoveredReason}); used its previous copy`
        this.log.warn(problem)
        this.setStatus({ cacheProblem: problem })
      }
      const { state } = loaded
      // Our own checksummed state: the rotated bundle in it is trusted as is.
      this.trust = trustedSporeKeys(state.trustBundle, this.networkId, `${this.cachePath} trustBundle`)
      this.trustBundle = state.trustBundle
      // Re-verify the cached spores in full (signatures, expiry), each under
      // the bundle that accepted it, then restore the rollback marks, which
      // outlive expired spores.
      this.restore(state.spores)
      for (const [name, mark] of Object.entries(state.marks)) {
        if (mark.sequence >= (this.marks.get(name)?.sequence ?? 0)) this.marks.set(name, mark)
      }
    } catch (err) {
      const problem = `cache ${this.cachePath} ignored: ${(err as Error).message}`
      this.log.error(problem, { err })
      this.setStatus({ cacheProblem: problem })
    }
  }

  /**
   * Takes back cached spores, each verified under the trust bundle that
   * accepted it. No rotation happens here: the bundle in force was cached.
   */
  private restore(cached: CachedSpore[]): void {
    const keysFor = new Map<TrustBundle, TrustedKeys>()
    let restored = 0
    let rejected = 0
    for (const { signed, acceptedUnder } of cached) {
      try {
        let trust = keysFor.get(acceptedUnder)
        if (trust == null) {
          trust = trustedSporeKeys(acceptedUnder, this.networkId, `${this.cachePath} accepting trust bundle`)
          keysFor.set(acceptedUnder, trust)
        }
        const { verified } = verifySpore(signed, {
          trust,
          nowMs: this.now(),
          clockSlackMs: this.clockSlackMs,
          source: 'cache',
          markFor: (name) => this.marks.get(name)
        })
        this.spores.set(verified.name, verified)
        this.marks.set(verified.name, { sequence: verified.sequence, digest: verified.digest })
        this.acceptedUnder.set(verified.name, acceptedUnder)
        restored++
      } catch (err) {
        rejected++
        if (isSporeRejectedError(err)) {
          this.log.warn('cached spore dropped', { sporeName: err.sporeName, reason: err.reason, detail: err.detail })
          this.emit('spore:rejected', err)
        } else {
          this.log.warn('cached spore dropped', { err })
        }
      }
    }
    this.setStatus({
      sporeCount: this.spores.size,
      rejectedCount: this.state.rejectedCount + rejected,
      ...(restored > 0 ? { activeSource: 'cache' } : {})
    })
  }

  /** Queues a cache write; writes never overlap and the last one wins. */
  private persist(): void {
    const path = this.cachePath
    if (path == null) return
    this.saving = this.saving.then(async () => {
      try {
        await saveCache(path, {
          trustBundle: this.trustBundle,
          spores: [...this.spores.values()].map((s) => ({
            signed: s.signed,
            acceptedUnder: this.acceptedUnder.get(s.name) ?? this.trustBundle
          })),
          marks: Object.fromEntries(this.marks)
        })
      } catch (err) {
        this.log.error('could not write spore cache', { path, err })
      }
    })
  }

  private async pollLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (this.state.mode !== 'spore-manager') await this.refresh({ signal })
      // ±10% jitter so a fleet started together does not poll in lockstep.
      const delay = this.refreshIntervalMs * (0.9 + Math.random() * 0.2)
      try {
        await sleep(delay, undefined, { signal, ref: false })
      } catch {
        return
      }
    }
  }

  private async followLoop(signal: AbortSignal): Promise<void> {
    const manager = this.sporeManager
    if (manager == null) return
    const backoff = new Backoff(this.reconnect)
    while (!signal.aborted) {
      if (this.resolveService(SERVICE_NAMES.sporeManager).length === 0) {
        try {
          await once(this, 'change', { signal })
        } catch {
          return
        }
        continue
      }
      try {
        for await (const batch of manager.watch({ signal, knownSequences: this.knownSequences() })) {
          backoff.reset()
          if (this.state.mode !== 'spore-manager') {
            this.setStatus({ mode: 'spore-manager', reason: 'following the Spore Manager watch stream', activeSource: manager.id })
          }
          this.ingest(batch, manager.id)
        }
      } catch (err) {
        if (signal.aborted) return
        const retryAfter = isRateLimitedError(err) ? err.retryAfterMs : isUnavailableError(err) ? (err.retryAfterMs ?? 0) : 0
        const delay = backoff.next(retryAfter, this.reconnectWindowMs)
        this.setStatus({
          mode: 'fallback',
          reason: `Spore Manager unavailable (${(err as Error).message}); serving cached spores and polling other sources, retry in ${delay} ms`
        })
        void this.refresh({ signal })
        try {
          await sleep(delay, undefined, { signal, ref: false })
        } catch {
          return
        }
      }
    }
  }
}

/** For ordering only; the verifier decides what the bytes really are. */
function isBootstrapBytes(signed: SignedSpore): boolean {
  try {
    return Spore.decode(signed.spore).name === 'bootstrap'
  } catch {
    return false
  }
}

/** The node's read-only window on the network's spores. */
export function createSporeClient(components: SporeClientComponents, init: SporeClientInit): SporeClient {
  return new DefaultSporeClient(components, init)
}
