import { Phase, type Logger, type PhaseTransition } from '@mycelium/core-interfaces'
import type { AgentStateStore } from './agent-state.js'
import type { AgentCounters, BootstrapAgentInit, PhaseStep } from './agent-types.js'
import { DEFAULT_HISTORY_SIZE } from './defaults.js'
import { attemptOf, type MachineState } from './phase-machine.js'

/**
 * What the machine's moves leave behind for operators and metrics. A phase
 * change goes into a bounded history (saved: it survives restarts), a
 * counter, and a log line whose level says whether it is trouble (FALLBACK,
 * RECOVERY warn); a step inside a phase is a counter and a log line, with the
 * error when it was a failed attempt. The runner emits the events this
 * returns; keeping the record here leaves the runner to feed the machine and
 * run its actions.
 */
export class PhaseTrail {
  /** The last phase changes, oldest first (status; saved at every change). */
  history: PhaseTransition[] = []
  /** When the current phase was entered (wall clock, for status). */
  phaseSince = Date.now()
  readonly counters: AgentCounters = { transitions: {}, steps: 0, reconnectAttempts: 0, heartbeatAcks: 0, capabilityUpdates: 0 }

  constructor(
    private readonly store: Pick<AgentStateStore, 'saveHistory'>,
    /** Read at every change (a retune may change it). */
    private readonly init: Pick<BootstrapAgentInit, 'historySize'>,
    private readonly log: Logger
  ) {}

  /** A phase change (never a phase to itself): recorded, and returned as the `transition` event. */
  transition(from: Phase, to: Phase, reason: string): PhaseTransition {
    this.phaseSince = Date.now()
    const transition: PhaseTransition = { from, to, reason, at: new Date() }
    this.history = [...this.history, transition].slice(-(this.init.historySize ?? DEFAULT_HISTORY_SIZE))
    const key = Phase[to]
    this.counters.transitions[key] = (this.counters.transitions[key] ?? 0) + 1
    const level = to === Phase.FALLBACK || to === Phase.RECOVERY ? 'warn' : 'info'
    this.log[level]('phase transition', { from: Phase[from], to: Phase[to], phase: Phase[to], reason })
    void this.store.saveHistory(this.history)
    return transition
  }

  /** A step inside the phase: logged and visible in status, not history and not a transition; returned as the `step` event. */
  step(before: MachineState, after: MachineState): PhaseStep {
    this.counters.steps++
    const failed = after.failures > before.failures && after.lastError !== ''
    const fields = { phase: Phase[after.phase], step: after.step, attempt: attemptOf(after), ...(failed ? { error: after.lastError } : {}) }
    if (failed) this.log.warn('phase attempt failed', fields)
    else this.log.info('phase step', fields)
    return { phase: after.phase, step: after.step, lastError: after.lastError }
  }
}
