import { durationToMs, silentLogger, type Logger, type NodeConfig } from '@mycelium/core-interfaces'
import { createCsr, createIdentityStore, csrInChildProcess, type CsrMaker, type IdentityStore } from '@mycelium/basic-net'
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

/**
 * CSRs made by `command` (the daemon's own executable, `node-core csr-child`): the
 * X.509 library then never loads into the daemon, which would keep ~4 MB of idle
 * RSS after enrolment and after each renewal (basic-net `csrInChildProcess`). A
 * child that cannot run is logged, and the CSR is made in this process: a node
 * that cannot enrol is worse off than one that idles 4 MB higher.
 */
export function csrMakerFor(command: readonly string[], log: Logger): CsrMaker {
  const inChild = csrInChildProcess(command)
  return async (privateKey, spiffeId) => {
    const started = Date.now()
    try {
      const csr = await inChild(privateKey, spiffeId)
      log.info('CSR made in a child process', { ms: Date.now() - started })
      return csr
    } catch (err) {
      log.warn('making the CSR in this process instead', { error: (err as Error).message })
      return createCsr(privateKey, spiffeId)
    }
  }
}

/**
 * The node's identity store, as the daemon and the recovery tools both open it; `csrCommand`:
 * its CSRs are made by that child (see `csrMakerFor`), else in this process.
 */
export function identityStoreFor(config: Readonly<NodeConfig>, logger?: Logger, csrCommand?: readonly string[]): IdentityStore {
  const renewBefore = config.identity?.renewBefore
  const makeCsr = csrCommand != null ? csrMakerFor(csrCommand, (logger ?? silentLogger()).forComponent('node-core:identity')) : undefined
  return createIdentityStore(
    { ...(logger != null ? { logger } : {}), ...(makeCsr != null ? { makeCsr } : {}) },
    {
      networkId: config.networkId,
      name: config.nodeId,
      ...identityPaths(config),
      ...(renewBefore != null ? { renewBeforeMs: durationToMs(renewBefore, 0) } : {})
    }
  )
}
