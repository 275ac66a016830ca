import { decodeStrict, EmergencyAction, EmergencyOperation, type Command } from '@mycelium/core-interfaces'
import { tallySignatures, type TrustedKeys } from '@mycelium/spore-client'

export type Validation = { ok: true; operation?: EmergencyOperation } | { ok: false; reason: string }

export interface ValidationContext {
  nowMs: number
  networkId: string
  nodeId: string
  /** Operator keys from the trust bundle; emergency commands need them. */
  operatorKeys?: TrustedKeys
}

/**
 * Decides whether a command may run, without running anything: a command id,
 * a known kind, a deadline not yet passed, a well-formed payload, and for
 * emergency operations enough valid signatures by distinct operator keys over
 * an operation bound to this command, network and node.
 */
export function validateCommand(cmd: Command, ctx: ValidationContext): Validation {
  if (cmd.commandId === '') return { ok: false, reason: 'malformed: command_id is empty' }
  if (cmd.deadline != null && ctx.nowMs > cmd.deadline.getTime()) {
    return { ok: false, reason: `deadline exceeded (${cmd.deadline.toISOString()})` }
  }
  const kind = cmd.kind
  if (kind == null) return { ok: false, reason: 'unknown or missing command kind' }
  switch (kind.$case) {
    case 'restart':
      return { ok: true }
    case 'reconfigure':
      return kind.value.config == null ? { ok: false, reason: 'malformed: reconfigure carries no config' } : { ok: true }
    case 'update':
      return { ok: true }
    case 'emergency':
      return validateEmergency(cmd.commandId, kind.value.operation, kind.value.signatures, ctx)
    default:
      return { ok: false, reason: 'unknown command kind' }
  }
}

function validateEmergency(
  commandId: string,
  bytes: Uint8Array,
  signatures: Array<{ keyId: string; signature: Uint8Array }>,
  ctx: ValidationContext
): Validation {
  let op: EmergencyOperation
  try {
    op = decodeStrict(EmergencyOperation, bytes, 'emergency operation') // an out-of-range expires_at must not read as NaN
  } catch (err) {
    return { ok: false, reason: `malformed emergency operation: ${(err as Error).message}` }
  }
  if (op.commandId !== commandId) return { ok: false, reason: 'emergency operation is bound to another command id' }
  if (op.networkId !== ctx.networkId || op.nodeId !== ctx.nodeId) {
    return { ok: false, reason: `emergency operation is for ${op.networkId}/${op.nodeId}, not this node` }
  }
  if (op.action === EmergencyAction.UNSPECIFIED || op.action === EmergencyAction.UNRECOGNIZED) {
    return { ok: false, reason: 'emergency operation names no known action' }
  }
  if (op.expiresAt == null || op.expiresAt.getTime() < ctx.nowMs) return { ok: false, reason: 'emergency operation expired' }
  const keys = ctx.operatorKeys
  if (keys == null || keys.keys.size === 0) return { ok: false, reason: 'no operator keys are trusted; emergency commands are refused' }
  const { valid, unknown } = tallySignatures(bytes, signatures, keys)
  if (valid.size >= keys.threshold) return { ok: true, operation: op }
  if (unknown.length > 0)
    return {
      ok: false,
      reason: `emergency operation signed by unknown key ${unknown.join(', ')} (${valid.size} valid of ${keys.threshold})`
    }
  return { ok: false, reason: `emergency operation lacks a valid operator signature (${valid.size} valid of ${keys.threshold})` }
}
