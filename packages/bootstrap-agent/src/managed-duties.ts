import {
  EmergencyAction,
  HealthState,
  IdentityState,
  NotFoundError,
  type ComponentHealth,
  type Logger,
  type NodeConfig,
  type ReportHealthResponse
} from '@mycelium/core-interfaces'
import { anySignal } from '@mycelium/core-utils'
import type { BootstrapAgentComponents } from './agent-types.js'
import type { CommandHandlers } from './commands/executor.js'
import { tryConfig, type ConfigStore, type TrialOutcome } from './config-store.js'
import type { ManagerLink } from './manager-link.js'
import { ALWAYS_HEALTHY, type NodeHealth } from './node-facts.js'
import { DEFAULT_CONFIG_CONFIRM_WINDOW_MS, DEFAULT_RENEW_RETRY_MS } from './defaults.js'

/** The agent's own components these duties use, plus its link, config store and logger. */
export type ManagedDutiesComponents = Pick<
  BootstrapAgentComponents,
  'identity' | 'health' | 'applyConfig' | 'validateConfig' | 'restart' | 'emergency' | 'selfUpdate'
> & {
  link: ManagerLink
  /** The config store, once the agent opened it. */
  config: () => ConfigStore
  logger: Logger
}

export interface ManagedDutiesInit {
  /** The trial window; a function reads the one in force when each trial begins. @default DEFAULT_CONFIG_CONFIRM_WINDOW_MS */
  configConfirmWindowMs?: number | (() => number | undefined)
  /** How often a failed renewal is retried at most. @default DEFAULT_RENEW_RETRY_MS */
  renewRetryMs?: number
  /** A config trial ended (promoted, reverted or rejected). */
  onTrial?: (outcome: TrialOutcome) => void
}

/**
 * What the agent does while a manager is in charge, apart from the phase
 * machine: config updates announced by heartbeat acks (try-mode trials,
 * serialised), certificate renewal before expiry, and the handlers the
 * command executor calls. The agent tells it the phase and hands it the
 * abort signal of its run.
 */
export class ManagedDuties {
  private trials: Promise<unknown> = Promise.resolve()
  /** Aborted by an emergency reset: every trial queued before it reverts (or is never begun), none promotes. */
  private reset = new AbortController()
  private trialRunning = false
  private renewing = false
  private lastRenewAttemptMs = 0

  constructor(
    private readonly components: ManagedDutiesComponents,
    private readonly init: ManagedDutiesInit = {}
  ) {}

  /** Each heartbeat ack: a newer config to try, a renewal that is due. */
  onAck(ack: ReportHealthResponse, managed: boolean, signal: AbortSignal | undefined): void {
    this.maybeUpdateConfig(ack, signal)
    this.maybeRenew(managed, signal)
  }

  private maybeUpdateConfig(ack: ReportHealthResponse, signal: AbortSignal | undefined): void {
    const store = this.components.config()
    if (signal == null || this.trialRunning || ack.latestConfigVersion <= store.current().version) return
    // A version already reverted or rejected is not tried again (the heartbeat reports why): the manager issues a newer one.
    const last = store.lastTrial()
    if (last != null && last.outcome !== 'promoted' && ack.latestConfigVersion <= last.version) return
    this.trialRunning = true
    const log = this.components.logger
    this.track(async () => {
      try {
        const res = await this.components.link.requestConfig(store.current().version, signal)
        if (res.config == null) return
        log.info('trying a new config', { version: res.config.version, windowMs: this.windowMs() })
        const outcome = await this.trialConfig(res.config, undefined, signal)
        const write = outcome.outcome === 'promoted' ? log.info.bind(log) : log.warn.bind(log)
        write('config trial finished', { ...outcome })
        this.init.onTrial?.(outcome)
      } catch (err) {
        log.warn('config update failed', { err })
      } finally {
        this.trialRunning = false
      }
    })
  }

  private readonly inflight = new Set<Promise<unknown>>()

  private track(work: () => Promise<unknown>): void {
    const p = work().finally(() => this.inflight.delete(p))
    this.inflight.add(p)
  }

  /**
   * Resolves when no config work is in flight: the agent's stop aborts a
   * trial (which reverts, writing the store) and waits for it here, so
   * nothing writes the state dir after stop returns.
   */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
    await this.trials
  }

  /**
   * Tries a config (try-mode: apply, healthy window, promote or revert).
   * Trials never overlap: heartbeat-driven and command-driven ones queue.
   */
  trialConfig(config: NodeConfig, windowMs: number | undefined, signal: AbortSignal | undefined): Promise<TrialOutcome> {
    const health = this.components.health ?? ALWAYS_HEALTHY
    const applyConfig = this.components.applyConfig ?? (async () => undefined)
    let before: NodeHealth | undefined
    const reset = this.reset.signal
    // anySignal, not AbortSignal.any: `reset` (and the caller's signal) outlive the trial.
    const any = signal != null ? anySignal([signal, reset]) : undefined
    const trialSignal = any?.signal ?? reset
    const next = this.trials.then(() => {
      before = health()
      return tryConfig(this.components.config(), config, {
        windowMs: windowMs ?? this.windowMs(),
        ...(this.components.validateConfig != null ? { validate: this.components.validateConfig } : {}),
        apply: applyConfig,
        isHealthy: (check) => trialVerdict(before?.components ?? [], health(), check.final),
        signal: trialSignal
      })
    })
    this.trials = next.catch(() => undefined)
    return any != null ? next.finally(any.dispose) : next
  }

  private windowMs(): number {
    const w = this.init.configConfirmWindowMs
    return (typeof w === 'function' ? w() : w) ?? DEFAULT_CONFIG_CONFIRM_WINDOW_MS
  }

  /**
   * Emergency RESET_TO_LAST_KNOWN_GOOD: aborts the trial in its window (it
   * reverts and reports so) and every one queued, then — queued behind them,
   * so two applies never race — puts the last-known-good back in force.
   */
  async rollbackConfig(reason: string): Promise<void> {
    const reset = this.reset
    this.reset = new AbortController()
    reset.abort(reason)
    const run = this.trials.then(async () => {
      const store = this.components.config()
      if (await store.revert(reason)) await this.components.applyConfig?.(store.current())
    })
    this.trials = run.catch(() => undefined)
    await run
  }

  /**
   * Renewal before expiry, without a restart: when the identity store says
   * renewal is due and a manager is reachable (MANAGED), a new CSR (same
   * key) is exchanged for a fresh certificate, which the store hands to TLS.
   * Called on identity state changes and on every heartbeat ack.
   */
  maybeRenew(managed: boolean, signal: AbortSignal | undefined): void {
    const { identity, link, logger } = this.components
    if (signal == null || identity.report().state !== IdentityState.RENEWAL_DUE || !managed) return
    if (this.renewing || Date.now() - this.lastRenewAttemptMs < (this.init.renewRetryMs ?? DEFAULT_RENEW_RETRY_MS)) return
    this.renewing = true
    this.lastRenewAttemptMs = Date.now()
    void (async () => {
      try {
        const res = await link.renewCertificate(await identity.createCsr(), signal)
        await identity.install(res.certificateChainPem.join('\n'))
        logger.info('certificate renewed', { notAfter: res.notAfter?.toISOString() })
      } catch (err) {
        logger.warn('certificate renewal failed; retrying within a minute', { err })
      } finally {
        this.renewing = false
      }
    })()
  }

  /** What management commands do on this node. */
  commandHandlers(signal: () => AbortSignal | undefined): CommandHandlers {
    return {
      restart: async (component) => {
        if (this.components.restart == null) throw new NotFoundError(`no restart handler for "${component || 'agent'}" on this node`)
        await this.components.restart(component)
      },
      reconfigure: (config, windowMs) => this.trialConfig(config, windowMs, signal()),
      emergency: async (action, reason) => {
        if (action === EmergencyAction.RESET_TO_LAST_KNOWN_GOOD) {
          await this.rollbackConfig(`emergency: ${reason}`)
          return
        }
        if (this.components.emergency == null)
          throw new NotFoundError(`emergency action ${EmergencyAction[action]} is not supported on this node`)
        await this.components.emergency(action, reason)
      },
      ...this.components.selfUpdate
    }
  }
}

/**
 * Whether a config on trial keeps the node healthy, judged against the node
 * before the trial: at every check the node must not be UNHEALTHY and no
 * component may have restarted (a crash during the window, e.g. K3s
 * crash-looping on the new config); at the last check every component that
 * was HEALTHY before must be HEALTHY again (a restart for the new config
 * had the window to settle). True, or the reason it is not. Pure.
 */
export function trialVerdict(before: ComponentHealth[], now: NodeHealth, final: boolean): true | string {
  if (now.state === HealthState.UNHEALTHY) {
    const why = now.components.filter((c) => c.state === HealthState.UNHEALTHY).map((c) => `${c.name}: ${c.reason}`)
    return `node UNHEALTHY${why.length > 0 ? ` (${why.join('; ')})` : ''}`
  }
  for (const c of now.components) {
    const prev = before.find((b) => b.name === c.name)
    if (prev != null && c.restarts > prev.restarts)
      return `${c.name} restarted ${c.restarts - prev.restarts} time(s) during the trial${c.reason ? ` (${c.reason})` : ''}`
  }
  if (final) {
    for (const prev of before) {
      if (prev.state !== HealthState.HEALTHY) continue
      const c = now.components.find((x) => x.name === prev.name)
      if (c != null && c.state !== HealthState.HEALTHY)
        return `${c.name} was healthy before the trial and is ${HealthState[c.state]} at its end${c.reason ? ` (${c.reason})` : ''}`
    }
  }
  return true
}
