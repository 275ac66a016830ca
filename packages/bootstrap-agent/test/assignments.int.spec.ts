import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Assignment, DynamicComponentState, Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import type { AssignmentsUpdate, BootstrapAgent } from '../src/index.js'
import { devAgent, until } from './helpers/agent.js'

/**
 * The agent follows its assignments against a dev network over real mTLS:
 * the set in the registration reply, then RequestAssignments whenever a
 * heartbeat ack announces a newer generation; the node's component report
 * rides every heartbeat and NodeStatus.
 */
let net: DevNetwork
let dir: string
let agent: BootstrapAgent | undefined

beforeAll(async () => {
  net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 200 })
})
afterAll(async () => {
  await net?.stop()
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agent-assign-'))
})
afterEach(async () => {
  await agent?.stop()
  agent = undefined
  rmSync(dir, { recursive: true, force: true })
})

const assignment = (name: string, desiredState = 'running'): Assignment =>
  Assignment.fromPartial({ assignmentId: `a-${name}`, componentSpore: `component/${name}`, desiredState, parameters: { p: name } })

describe('assignments', () => {
  it('come with the registration, then on every generation an ack announces; the applied state goes back with heartbeats', async () => {
    net.networkManager.setAssignments('node-as', [assignment('node-metrics')])
    const updates: AssignmentsUpdate[] = []
    let applied = 0
    agent = devAgent(net, dir, 'node-as', {
      joinToken: await net.newJoinToken(),
      onAssignments: (u) => {
        updates.push(u)
        applied = u.generation
      },
      componentsReport: () => ({
        generation: applied,
        components:
          updates.at(-1)?.assignments.map((a) => ({
            name: a.componentSpore.slice('component/'.length),
            version: '1.0.0',
            artifactDigest: '',
            state: DynamicComponentState.RUNNING,
            restarts: 0,
            reason: '',
            rssBytes: 0,
            assignmentId: a.assignmentId,
            pid: 0,
            onDemand: false
          })) ?? []
      })
    })
    await agent.start()
    await until('MANAGED', () => agent!.phase === Phase.MANAGED)
    expect(updates).toEqual([{ generation: 1, assignments: [assignment('node-metrics')], source: 'registration' }])

    net.networkManager.setAssignments('node-as', [assignment('node-metrics'), assignment('log-shipper', 'stopped')])
    await until('generation 2 fetched', () => updates.length === 2)
    expect(updates[1]).toEqual({
      generation: 2,
      assignments: [assignment('node-metrics'), assignment('log-shipper', 'stopped')],
      source: 'request'
    })
    const record = () => net.networkManager.nodes.get('node-as')!
    await until('the manager sees generation 2 applied', () => record().lastHealth?.appliedAssignmentsGeneration === 2)
    expect(record().lastHealth!.dynamicComponents.map((c) => c.name)).toEqual(['node-metrics', 'log-shipper'])
    expect(agent.status()).toMatchObject({
      assignmentsGeneration: 2,
      dynamicComponents: [{ name: 'node-metrics' }, { name: 'log-shipper' }]
    })

    // Unassigning everything is a generation too.
    net.networkManager.setAssignments('node-as', [])
    await until('generation 3 (empty) fetched', () => updates.length === 3)
    expect(updates[2]).toEqual({ generation: 3, assignments: [], source: 'request' })
    expect(agent.phase).toBe(Phase.MANAGED)
  })
})
