import { EmergencyAction, HealthState, IdentityState, type Logger, type NodeConfig, type ReportHealthResponse } from '@mycelium/core-interfaces'
import type { BootstrapAgentComponents } from './agent-types.js'
import type { CommandHandlers } from './commands/executor.js'
import { tryConfig, type ConfigStore, type TrialOutcome } from './config-store.js'
import type { ManagerLink } from './manager-link.js'
import { ALWAYS_HEALTHY } from './node-facts.js'

/** The agent's own components these duties use, plus its link, config store and logger. */
export type ManagedDutiesComponents = Pick<BootstrapAgentComponents, 'identity' | 'health' | 'applyConfig' | 'restart' | 'emergency'> & {
  link: ManagerLink
  /** The config store, once the agent opened it. */
  config: () => ConfigStore
  logger: Logger
}

export interface ManagedDutiesInit {
  /** @default 30000 */
  configConfirmWindowMs?: number
  /** How often a failed renewal is retried at most. @default 60000 */
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
    this.maybeRenew(managed)
  }

  private maybeUpdateConfig(ack: ReportHealthResponse, signal: AbortSignal | undefined): void {
    const store = this.components.config()
    if (signal == null || this.trialRunning || ack.latestConfigVersion <= store.current().version) return
    this.trialRunning = true
    const log = this.components.logger
    void (async () => {
      try {
        const res = await this.components.link.requestConfig(store.current().version)
        if (res.config == null) return
        log.info('trying a new config', { version: res.config.version, windowMs: this.init.configConfirmWindowMs ?? 30_000 })
        const outcome = await this.trialConfig(res.config, undefined, signal)
        const write = outcome.outcome === 'promoted' ? log.info.bind(log) : log.warn.bind(log)
        write('config trial finished', { ...outcome })
        this.init.onTrial?.(outcome)
      } catch (err) {
        log.warn('config update failed', { err })
      } finally {
        this.trialRunning = false
      }
    })()
  }

  /**
   * Tries a config (try-mode: apply, healthy window, promote or revert).
   * Trials never overlap: heartbeat-driven and command-driven ones queue.
   */
  trialConfig(config: NodeConfig, windowMs: number | undefined, signal: AbortSignal | undefined): Promise<TrialOutcome> {
    const health = this.components.health ?? ALWAYS_HEALTHY
    const next = this.trials.then(() =>
      tryConfig(this.components.config(), config, {
        windowMs: windowMs ?? this.init.configConfirmWindowMs ?? 30_000,
        apply: this.components.applyConfig ?? (async () => undefined),
        isHealthy: () => health().state !== HealthState.UNHEALTHY,
        ...(signal != null ? { signal } : {})
      })
    )
    this.trials = next.catch(() => undefined)
    return next
  }

  async rollbackConfig(reason: string): Promise<void> {
    const store = this.components.config()
    if (await store.revert(reason)) await this.components.applyConfig?.(store.current())
  }

  /**
   * Renewal before expiry, without a restart: when the identity store says
   * renewal is due and a manager is reachable (MANAGED), a new CSR (same
   * key) is exchanged for a fresh certificate, which the store hands to TLS.
   * Called on identity state changes and on every heartbeat ack.
   */
  maybeRenew(managed: boolean): void {
    const { identity, link, logger } = this.components
    if (identity.report().state !== IdentityState.RENEWAL_DUE || !managed) return
    if (this.renewing || Date.now() - this.lastRenewAttemptMs < (this.init.renewRetryMs ?? 60_000)) return
    this.renewing = true
    this.lastRenewAttemptMs = Date.now()
    void (async () => {
      try {
        const res = await link.renewCertificate(await identity.createCsr())
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
        if (this.components.restart == null) throw new Error(`no restart handler for "${component || 'agent'}" on this node`)
        await this.components.restart(component)
      },
      reconfigure: (config, windowMs) => this.trialConfig(config, windowMs, signal()),
      emergency: async (action, reason) => {
        if (action === EmergencyAction.RESET_TO_LAST_KNOWN_GOOD) {
          await this.rollbackConfig(`emergency: ${reason}`)
          return
        }
        if (this.components.emergency == null) throw new Error(`emergency action ${EmergencyAction[action]} is not supported on this node`)
        await this.components.emergency(action, reason)
      }
    }
  }
}
