import { join } from 'node:path'
import { EmergencyAction, InvalidInputError, type Logger } from '@mycelium/core-interfaces'
import { isCorruptStateError, readStateFile, writeStateFile } from '@mycelium/core-utils'

/**
 * The emergency measures in force on a node (ISOLATE, STOP_ACCEPTING_WORKLOADS),
 * kept in one checksummed state file so they hold across restarts, until a
 * RESUME undoes them. DUMP_DIAGNOSTICS changes no measure (the last bundle is
 * remembered for status).
 */
export interface EmergencyMeasures {
  /** Peer networking stopped (PeerAssist, the peer monitor, LAN discovery). */
  isolated: boolean
  /** New workloads accepted (false: the K3s node is cordoned). */
  acceptingWorkloads: boolean
  /** Why the last measure was taken (the command's reason). */
  reason: string
  /** When the last measure was taken (ISO 8601), '' when none. */
  since: string
  /** Path of the last diagnostics bundle written, '' when none. */
  lastDiagnostics: string
}

export const NO_MEASURES: Readonly<EmergencyMeasures> = Object.freeze({
  isolated: false,
  acceptingWorkloads: true,
  reason: '',
  since: '',
  lastDiagnostics: ''
})

/** The file under the state directory. */
export const EMERGENCY_STATE_FILE = 'emergency.state'

/** One thing the runner does for an action (node-commands.ts runs them in order). */
export type EmergencyStep = 'stop-peers' | 'start-peers' | 'cordon' | 'uncordon' | 'dump-diagnostics'

/**
 * What an emergency action changes and what must run (pure). ISOLATE and
 * STOP_ACCEPTING_WORKLOADS are idempotent (their step runs again: a cordon
 * that failed is retried); RESUME undoes both; RESET_TO_LAST_KNOWN_GOOD is
 * the agent's, not node-core's.
 */
export function planEmergency(
  current: EmergencyMeasures,
  action: EmergencyAction,
  reason: string,
  at: Date
): { next: EmergencyMeasures; steps: EmergencyStep[] } {
  const taken = { reason, since: at.toISOString() }
  switch (action) {
    case EmergencyAction.ISOLATE:
      return { next: { ...current, ...taken, isolated: true }, steps: ['stop-peers'] }
    case EmergencyAction.STOP_ACCEPTING_WORKLOADS:
      return { next: { ...current, ...taken, acceptingWorkloads: false }, steps: ['cordon'] }
    case EmergencyAction.DUMP_DIAGNOSTICS:
      return { next: current, steps: ['dump-diagnostics'] }
    case EmergencyAction.RESUME:
      return {
        next: { ...NO_MEASURES, lastDiagnostics: current.lastDiagnostics },
        steps: [...(current.isolated ? (['start-peers'] as const) : []), ...(!current.acceptingWorkloads ? (['uncordon'] as const) : [])]
      }
    default:
      throw new InvalidInputError(`emergency action ${EmergencyAction[action]} is not handled by node-core`, 'emergency command')
  }
}

/** The measures in force after a restart: what the file says (its previous copy when corrupt), none when absent or unreadable. */
export async function loadEmergencyMeasures(stateDir: string, log: Logger): Promise<EmergencyMeasures> {
  const path = join(stateDir, EMERGENCY_STATE_FILE)
  try {
    const content = await readStateFile(path)
    if (content == null) return { ...NO_MEASURES }
    if (content.recoveredFromPrevious != null)
      log.warn('emergency state recovered from its previous copy', { path, reason: content.recoveredFromPrevious.reason })
    const parsed = JSON.parse(content.data.toString('utf8')) as Partial<EmergencyMeasures>
    return {
      isolated: parsed.isolated === true,
      acceptingWorkloads: parsed.acceptingWorkloads !== false,
      reason: typeof parsed.reason === 'string' ? parsed.reason : '',
      since: typeof parsed.since === 'string' ? parsed.since : '',
      lastDiagnostics: typeof parsed.lastDiagnostics === 'string' ? parsed.lastDiagnostics : ''
    }
  } catch (err) {
    // Never a boot loop: an unreadable file (both copies) means no measure, said loudly.
    log.error('emergency state unreadable; starting without emergency measures', {
      path,
      err,
      corrupt: isCorruptStateError(err)
    })
    return { ...NO_MEASURES }
  }
}

export async function saveEmergencyMeasures(stateDir: string, measures: EmergencyMeasures): Promise<void> {
  await writeStateFile(join(stateDir, EMERGENCY_STATE_FILE), Buffer.from(JSON.stringify(measures)))
}
