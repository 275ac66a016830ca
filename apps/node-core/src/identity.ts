import { durationToMs, type Logger, type NodeConfig } from '@mycelium/core-interfaces'
import { createIdentityStore, type IdentityStore } from '@mycelium/basic-net'
import { agentStatePaths } from '@mycelium/bootstrap-agent'
import { DEFAULT_STATE_DIR } from './defaults.js'

export function stateDirOf(config: Readonly<NodeConfig>): string {
  return config.stateDir || DEFAULT_STATE_DIR
}

/** The identity files: configured paths, else `<stateDir>/identity/{node.key,node.crt,ca.crt}`. */
export function identityPaths(config: Readonly<NodeConfig>): { keyFile: string; certificateFile: string; caFile: string } {
  const paths = agentStatePaths(stateDirOf(config))
  const id = config.identity
  return {
    keyFile: id?.keyFile || paths.identityKey,
    certificateFile: id?.certificateFile || paths.identityCertificate,
    caFile: id?.caFile || paths.identityCa
  }
}

/** The node's identity store, as the daemon and the recovery tools both open it. */
export function identityStoreFor(config: Readonly<NodeConfig>, logger?: Logger): IdentityStore {
  const renewBefore = config.identity?.renewBefore
  return createIdentityStore(logger != null ? { logger } : {}, {
    networkId: config.networkId,
    name: config.nodeId,
    ...identityPaths(config),
    ...(renewBefore != null ? { renewBeforeMs: durationToMs(renewBefore, 0) } : {})
  })
}
