import { rename } from 'node:fs/promises'
import { InvalidConfigError, IdentityState, Phase, type NodeConfig } from '@mycelium/core-interfaces'
import { displaced, enrol, openAgentState } from '@mycelium/bootstrap-agent'
import { CommandState } from '@mycelium/core-interfaces'
import { identityPaths, identityStoreFor, stateDirOf } from './identity.js'

/**
 * Manual recovery and identity tools: they work on the state directory
 * directly (stop the daemon first), and never print or export private keys.
 */
export async function describeIdentity(config: Readonly<NodeConfig>): Promise<string> {
  const store = identityStoreFor(config)
  await store.start()
  try {
    const r = store.report()
    return [
      `identity   ${store.spiffeId}`,
      `state      ${IdentityState[r.state]}${r.reason ? ` — ${r.reason}` : ''}`,
      ...(r.notAfter != null ? [`valid      ${r.notBefore?.toISOString()} → ${r.notAfter.toISOString()}`] : []),
      ...(r.certificateSha256 != null ? [`sha256     ${r.certificateSha256}`] : [])
    ].join('\n')
  } finally {
    store.stop()
  }
}

/** Creates the key if needed and enrols with the join token (no-op when already enrolled). */
export async function initIdentity(config: Readonly<NodeConfig>, joinToken: string | undefined): Promise<string> {
  const store = identityStoreFor(config)
  await store.start()
  try {
    if (store.report().usable) return `already enrolled as ${store.spiffeId} (until ${store.report().notAfter?.toISOString()})`
    if (joinToken == null)
      throw new InvalidConfigError('no join token: pass --join-token-file or set identity.joinTokenFile', 'recover re-enrol')
    const bundle = await enrol({
      identity: store,
      networkId: config.networkId,
      nodeId: config.nodeId,
      joinToken,
      endpoints: config.identity?.enrollmentEndpoints ?? [],
      timeoutMs: 10_000
    })
    await openAgentState(stateDirOf(config)).store.saveTrustBundle(bundle, { strict: true })
    return `enrolled as ${store.spiffeId} (until ${store.report().notAfter?.toISOString()})`
  } finally {
    store.stop()
  }
}

/** Moves the certificate aside and enrols again (a new token may be needed). */
export async function reEnrol(config: Readonly<NodeConfig>, joinToken: string | undefined): Promise<string> {
  const store = identityStoreFor(config)
  const certFile = identityPaths(config).certificateFile
  await rename(certFile, displaced(certFile)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
  })
  store.stop()
  return initIdentity(config, joinToken)
}

export async function recoveryReport(config: Readonly<NodeConfig>): Promise<string> {
  const state = openAgentState(stateDirOf(config))
  const configs = await state.openConfig(config as NodeConfig)
  const agent = state.store
  const history = await agent.loadHistory()
  await agent.loadTrustBundle()
  // Read-only look at the journal: what the next start will resume or fail.
  const journal = await state.openJournal()
  journal.close()
  return [
    await describeIdentity(config),
    `config     current v${configs.current().version}, last-known-good v${configs.lastKnownGood().version}`,
    `commands   ${journal.size} in the journal, ${journal.interrupted.length} unfinished`,
    ...journal.interrupted.map(
      ({ entry, plan }) =>
        `unfinished ${entry.commandId} (${entry.kind}, ${CommandState[entry.updates.at(-1)?.state ?? CommandState.UNSPECIFIED]}): next start ${plan.action === 'resume' ? 'resumes it' : `fails it: ${plan.reason}`}`
    ),
    ...[...configs.problems, ...agent.problems, ...journal.problems].map((p) => `problem    ${p}`),
    'recent transitions:',
    ...history.slice(-10).map((h) => `  ${h.at?.toISOString() ?? ''}  ${Phase[h.from]} → ${Phase[h.to]}  ${h.reason}`)
  ].join('\n')
}

export async function resetToLastKnownGood(config: Readonly<NodeConfig>): Promise<string> {
  const state = openAgentState(stateDirOf(config))
  const store = await state.openConfig(config as NodeConfig)
  const from = store.current().version
  const changed = await store.revert('manual recovery (node-core recover reset-config)')
  // Local operations go into the same journal as remote commands.
  const journal = await state.openJournal()
  try {
    await journal.record(
      `local-${Date.now()}`,
      'reset-config',
      'local',
      CommandState.SUCCEEDED,
      changed ? `reset from v${from}` : 'already on last-known-good'
    )
  } finally {
    journal.close()
  }
  return changed ? `config reset from v${from} to last-known-good v${store.current().version}` : `already on last-known-good v${from}`
}

/** A gzip tarball of the state directory without private keys or join tokens. */
export async function exportDiagnostics(config: Readonly<NodeConfig>, out: string): Promise<string[]> {
  const stateDir = stateDirOf(config)
  const tar = await import('tar') // only the recovery path pays for it
  const included: string[] = []
  // Keys, tokens, sockets, and K3s's kubeconfig (it embeds the cluster admin's client key).
  const secret = (path: string): boolean => /\.key$|join-token|\.sock$|kubeconfig/.test(path)
  // Earlier bundles, and this one: DUMP_DIAGNOSTICS writes into the state dir it archives (a tar reading its own growing output never ends).
  const bundle = (path: string): boolean => /(^|\/)diagnostics-[^/]*\.tar\.gz$/.test(path)
  await tar.c(
    {
      gzip: true,
      file: out,
      cwd: stateDir,
      portable: true,
      filter: (path) => {
        if (secret(path) || bundle(path)) return false
        included.push(path)
        return true
      }
    },
    ['.']
  )
  return included
}
