import * as grpc from '@grpc/grpc-js'
import { UnavailableError, HealthState, NodeStatusClient, Phase, StatusReport, type GetStatusResponse } from '@mycelium/core-interfaces'

/** Reads NodeStatus from a running agent. */
export function fetchStatus(socketPath: string, timeoutMs = 3000): Promise<StatusReport> {
  const client = new NodeStatusClient(`unix://${socketPath}`, grpc.credentials.createInsecure())
  return new Promise<StatusReport>((resolve, reject) =>
    client.getStatus({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res: GetStatusResponse) => {
      client.close()
      if (err != null)
        reject(new UnavailableError(`no agent answering on ${socketPath}: ${err.details || err.message}`, undefined, { cause: err }))
      else resolve(res.status ?? StatusReport.fromPartial({}))
    })
  )
}

const ago = (d: Date | undefined): string => (d == null ? '-' : `${Math.round((Date.now() - d.getTime()) / 1000)}s ago`)

/** The step inside the phase: "reconnection attempt 3 … (next in 2s; last error: …)". */
function progress(p: StatusReport['progress']): Array<[string, string]> {
  if (p == null || (p.step === '' && p.lastError === '')) return []
  const extra = [
    ...(p.nextAttemptAt != null ? [`next in ${Math.max(0, Math.round((p.nextAttemptAt.getTime() - Date.now()) / 1000))}s`] : []),
    ...(p.lastError !== '' ? [`last error: ${p.lastError}`] : [])
  ]
  return [['progress', `${p.step}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`]]
}

/** "k3s v7, logging v7, peers local, …": where each manager-owned section of the config in force came from. */
function sectionVersions(v: Record<string, number>): string {
  const entries = Object.entries(v).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? '-' : entries.map(([section, version]) => `${section} ${version > 0 ? `v${version}` : 'local'}`).join(', ')
}

/** A human table of the status. */
export function formatStatus(s: StatusReport): string {
  const rows: Array<[string, string]> = [
    ['node', `${s.identity?.nodeId ?? '?'} (${s.identity?.spiffeId ?? ''})`],
    ['phase', `${Phase[s.phase]} since ${ago(s.phaseSince)}`],
    ['reason', s.reason],
    ...progress(s.progress),
    [
      'identity',
      `${s.identityStatus?.reason || 'valid'}${s.identityStatus?.notAfter != null ? `, expires ${s.identityStatus.notAfter.toISOString()}` : ''}`
    ],
    ...s.managers.map((m): [string, string] => [
      m.service,
      `${m.endpoint?.address ?? '?'} ${m.state}, last seen ${ago(m.lastSeen)}, rtt ${m.heartbeatRttMs} ms`
    ]),
    ['health', `${HealthState[s.health] ?? '?'}${s.healthReason ? ` (${s.healthReason})` : ''}`],
    [
      'config',
      `current v${s.config?.currentVersion ?? 0}, last-known-good v${s.config?.lastKnownGoodVersion ?? 0}${s.config?.trialVersion ? `, trying v${s.config.trialVersion}` : ''}`
    ],
    ['config sections', sectionVersions(s.config?.sectionVersions ?? {})],
    ...(s.config?.lastTrial != null
      ? [
          [
            'last trial',
            `v${s.config.lastTrial.version} ${s.config.lastTrial.outcome}${s.config.lastTrial.reason ? `: ${s.config.lastTrial.reason}` : ''} (${ago(s.config.lastTrial.at)})`
          ] as [string, string]
        ]
      : []),
    ...(s.update != null
      ? [
          [
            'update',
            `slot ${s.update.slot}, ${s.update.version}${s.update.trialVersion ? ' on trial' : ''}${s.update.lastOutcome ? `; last: ${s.update.lastVersion} ${s.update.lastOutcome}${s.update.lastReason ? ` (${s.update.lastReason})` : ''}` : ''}`
          ] as [string, string]
        ]
      : []),
    ['spores', `${s.spores?.sporeCount ?? 0} from ${s.spores?.activeSource || '-'}, ${s.spores?.rejectedCount ?? 0} rejected`],
    ...s.peers.map((p): [string, string] => [
      `peer ${p.identity?.nodeId || '?'}`,
      `${p.endpoint?.address ?? '?'} ${p.state} (${p.source}), last seen ${ago(p.lastSeen)}`
    ]),
    ['runtime', `${s.runtime?.name ?? '-'}${s.runtime?.version ? ` ${s.runtime.version}` : ''}: ${s.runtime?.reason || 'available'}`],
    ...s.workloads.map((w): [string, string] => [
      `${w.kind} ${w.namespace ? `${w.namespace}/` : ''}${w.name}`,
      `${w.state}, id ${w.id.slice(0, 13)}, created ${ago(w.createdAt)}`
    ]),
    ...s.components.filter((c) => c.reason !== '').map((c): [string, string] => [`component ${c.name}`, c.reason])
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const history = s.history
    .slice(-8)
    .map((h) => `  ${h.at?.toISOString() ?? ''}  ${Phase[h.from].padEnd(12)} → ${Phase[h.to].padEnd(12)} ${h.reason}`)
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\nrecent transitions:\n${history.join('\n')}\n`
}
