import { NodeConfig, type Logger } from '@mycelium/core-interfaces'
import type { ConfigStore, SectionVersions } from '@mycelium/bootstrap-agent'

/**
 * The config the node boots on: the stored current (the last-known-good
 * after an interrupted trial: ConfigStore.open reverts it), merged with
 * the local config by `apply`. One that cannot be applied any more (a CA
 * file gone) falls back to the last-known-good, then to the local config
 * alone — a reported problem, never a boot loop. The store follows (its
 * current is the config booted on; the last trial: vN reverted, why), so
 * heartbeats and status report the version really in force.
 */
export async function bootOnStoredConfig(
  store: ConfigStore,
  local: NodeConfig,
  apply: (stored: NodeConfig) => Promise<void>,
  log: Logger,
  sections: () => SectionVersions
): Promise<void> {
  const current = store.current()
  const candidates: Array<['current' | 'last-known-good', NodeConfig]> = [['current', current]]
  if (store.lastKnownGood().version !== current.version) candidates.push(['last-known-good', store.lastKnownGood()])
  let failure: string | undefined
  for (const [which, stored] of candidates) {
    try {
      await apply(stored)
    } catch (err) {
      const problem = `stored ${which} config v${stored.version} cannot be applied: ${(err as Error).message}`
      failure ??= problem
      store.problems.push(problem)
      log.error(problem, { err })
      continue
    }
    log.info('booting on the stored config', { which, version: stored.version, sections: sections() })
    if (failure != null) await settleBootFallback(store, 'last-known-good', current.version, failure, log)
    return
  }
  await apply(NodeConfig.fromPartial({ ...local, version: 0 }))
  await settleBootFallback(store, 'local', current.version, failure!, log)
}

/** The store follows the config the node booted on, and the manager is told (last trial: reverted, why). */
async function settleBootFallback(
  store: ConfigStore,
  to: 'last-known-good' | 'local',
  failedVersion: number,
  reason: string,
  log: Logger
): Promise<void> {
  await store.bootFallback(to, reason)
  await store.recordTrial({ version: failedVersion, outcome: 'reverted', reason })
  log.warn('booted on a fallback config', { to, failedVersion, version: store.current().version })
}
