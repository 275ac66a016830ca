import { IdentityState } from '@mycelium/core-interfaces'
import { DEFAULT_DIAL_TIMEOUT_MS } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import type { AgentStateStore } from './agent-state.js'
import type { BootstrapAgentComponents, BootstrapAgentInit } from './agent-types.js'
import { enrol, isEnrolmentError } from './enrolment.js'
import type { AgentEvent } from './phase-machine.js'

/**
 * The identity actions of BOOTSTRAP and RECOVERY: check the identity (and
 * build the run's spore client from the trust bundle), and enrol with the
 * join token. Each returns the machine's event.
 */
export interface IdentityStepDeps {
  components: Pick<BootstrapAgentComponents, 'identity' | 'createSporeClient'>
  init: Pick<BootstrapAgentInit, 'networkId' | 'nodeId' | 'joinToken' | 'enrollmentEndpoints' | 'trustBundle' | 'dialTimeoutMs'>
  stateStore: AgentStateStore
}

const canEnrol = (init: IdentityStepDeps['init']): boolean => init.joinToken != null && (init.enrollmentEndpoints?.length ?? 0) > 0

/**
 * The identity's verdict; with a usable identity and no spore client yet,
 * also the run's spore client (started: it reads the cache only, never
 * waits for the network). `undefined` when the run was stopped meanwhile:
 * no spore client may outlive its run.
 */
export async function checkIdentity(
  deps: IdentityStepDeps,
  haveSpores: boolean,
  signal: AbortSignal
): Promise<{ event: AgentEvent; spores?: SporeClient } | undefined> {
  const report = await deps.components.identity.reload()
  if (signal.aborted) return undefined
  if (report.state === IdentityState.MISSING)
    return { event: { type: 'identity-missing', reason: report.reason, canEnrol: canEnrol(deps.init) } }
  if (!report.usable) return { event: { type: 'identity-invalid', reason: report.reason } }
  if (haveSpores) return { event: { type: 'identity-valid' } }
  const bundle = (await deps.stateStore.loadTrustBundle()) ?? deps.init.trustBundle
  if (signal.aborted) return undefined
  if (bundle == null) {
    // The certificate is fine but the trust bundle is lost: enrolling again restores it.
    return canEnrol(deps.init)
      ? { event: { type: 'identity-missing', reason: 'trust bundle missing or unreadable', canEnrol: true } }
      : { event: { type: 'identity-invalid', reason: 'no trust bundle: enrol again or provision one' } }
  }
  const spores = deps.components.createSporeClient(bundle)
  await spores.start()
  if (signal.aborted) {
    await spores.stop()
    return undefined
  }
  return { event: { type: 'identity-valid' }, spores }
}

/** Enrols with the join token and keeps the trust bundle it returns. */
export async function enrolStep(deps: IdentityStepDeps): Promise<AgentEvent> {
  try {
    const bundle = await enrol({
      identity: deps.components.identity,
      networkId: deps.init.networkId,
      nodeId: deps.init.nodeId,
      joinToken: deps.init.joinToken!,
      endpoints: deps.init.enrollmentEndpoints ?? [],
      timeoutMs: deps.init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
    })
    await deps.stateStore.saveTrustBundle(bundle)
    return { type: 'enrolled' }
  } catch (err) {
    const retry = isEnrolmentError(err) && !err.retryable ? ' (retrying will not help: check the token and network)' : ''
    return { type: 'enrolment-failed', reason: `${(err as Error).message}${retry}` }
  }
}
