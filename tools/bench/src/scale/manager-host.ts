/**
 * Child process: the dev network (Network Manager, enrolment, Spore Manager)
 * alone in its process, so its CPU and memory are measured apart from the
 * agents'. A restart is a real one: the orchestrator kills this process and
 * forks a new one on the same state directory (same CA, ports and tokens; the
 * node records, leases and admission queue are gone, as after a crash).
 */
import { msToDuration, ReportHealthRequest, ReportHealthResponse } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { profileFromEnv } from './profile.js'
import { processStats, type ManagerHostCommand, type ManagerReady, type ManagerStats } from './protocol.js'

let net: DevNetwork | undefined
const refusals = new Map<string, number>()
let refused = 0
const timeline: ManagerStats['timeline'] = []
setInterval(() => {
  const calls: Record<string, number> = {}
  for (const [path, count] of net?.calls ?? []) calls[path.slice(path.lastIndexOf('/') + 1)] = count
  timeline.push({ atMs: Date.now(), cpuMs: processStats().cpuMs, calls })
}, 1000).unref()

const writeProfile = profileFromEnv('manager')

function send(message: ManagerReady | ManagerStats | { type: 'failed'; error: string }): void {
  process.send?.(message)
}

function stats(): ManagerStats {
  const nodes = [...(net?.networkManager.nodes.values() ?? [])]
  const sample = nodes.find((n) => n.lastHealth != null)
  const heartbeatBytes = sample?.lastHealth != null ? ReportHealthRequest.encode(sample.lastHealth).finish().length : 0
  const ackBytes = ReportHealthResponse.encode({
    sequence: 1000,
    leaseExpiresAt: new Date(),
    leaseRemaining: msToDuration(net?.networkManager.leaseTtlMs ?? 3000),
    leaseRevoked: false,
    reason: '',
    latestConfigVersion: net?.networkManager.desiredConfig.version ?? 0,
    assignmentsGeneration: 0
  }).finish().length
  return {
    type: 'stats',
    ...processStats(),
    heartbeats: nodes.reduce((a, n) => a + n.healthReports, 0),
    nodes: nodes.length,
    managed: nodes.filter((n) => n.managed).length,
    // From the records, not the 'registered' event: registrations can arrive before startDevNetwork returns.
    admittedAtMs: nodes.flatMap((n) => (n.registeredAtMs != null ? [n.registeredAtMs] : [])),
    refused,
    maxRefusalsPerNode: Math.max(0, ...refusals.values()),
    heartbeatBytes,
    ackBytes,
    timeline
  }
}

process.on('message', (command: ManagerHostCommand) => {
  if (command.type === 'stats') {
    writeProfile()
    send(stats())
    return
  }
  const init = command.init
  void (async () => {
    net = await startDevNetwork({
      dir: init.dir,
      networkId: init.networkId,
      heartbeatIntervalMs: init.heartbeatIntervalMs,
      registrationRate: init.registrationRate,
      // A fleet's dial can wait behind the manager's own work; the handoff deadline must not be what fails.
      handoffDeadlineMs: 30_000,
      ...(init.failoverGraceMs != null ? { failoverGraceMs: init.failoverGraceMs } : {})
    })
    net.networkManager.on('registration:refused', (nodeId) => {
      refused++
      refusals.set(nodeId, (refusals.get(nodeId) ?? 0) + 1)
    })
    const tokens = init.joinTokens > 0 ? await net.newJoinTokens(init.joinTokens) : []
    send({ type: 'ready', enrollment: net.endpoints.enrollment, bootstrapFile: net.bootstrapFile, tokens, atMs: Date.now() })
  })().catch((err: Error) => {
    send({ type: 'failed', error: err.stack ?? String(err) })
    process.exitCode = 1
  })
})
// The orchestrator going away ends us too.
process.on('disconnect', () => process.exit(0))
