import { NodeConfig } from '@mycelium/core-interfaces'
import { DEFAULT_HANDOFF_DEADLINE_MS, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_RECONNECT } from '@mycelium/bootstrap-agent'
import { DEFAULT_MULTICAST_PORT, DEFAULT_PING_INTERVAL_MS, DEFAULT_SUSPECT_PHI } from '@mycelium/basic-net'
import { DEFAULT_CLOCK_SLACK_MS } from '@mycelium/spore-client'
import { agentTimings, multicastGroup, peerTimings, secureRandom, sporeTimings } from '../src/package-init.js'

describe('package-init: NodeConfig → each package init', () => {
  it("fills every unset key from the owning package's DEFAULT_* constant", () => {
    const c = NodeConfig.fromPartial({ networkId: 'n', nodeId: 'a' })
    expect(agentTimings(c)).toMatchObject({
      handoffDeadlineMs: DEFAULT_HANDOFF_DEADLINE_MS,
      defaultHeartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
      reconnect: DEFAULT_RECONNECT
    })
    expect(peerTimings(c)).toEqual({ pingIntervalMs: DEFAULT_PING_INTERVAL_MS, suspectPhi: DEFAULT_SUSPECT_PHI })
    expect(sporeTimings(c).clockSlackMs).toBe(DEFAULT_CLOCK_SLACK_MS)
    expect(multicastGroup(c)).toEqual({})
  })

  it('takes the configured values, and the default port for a group without one', () => {
    const c = NodeConfig.fromPartial({ handoff: { commitDeadline: { seconds: 2, nanos: 0 } }, peers: { multicastGroup: '239.1.2.3' } })
    expect(agentTimings(c).handoffDeadlineMs).toBe(2000)
    expect(multicastGroup(c)).toEqual({ group: '239.1.2.3', port: DEFAULT_MULTICAST_PORT })
    expect(multicastGroup(NodeConfig.fromPartial({ peers: { multicastGroup: '239.1.2.3:9999' } }))).toEqual({
      group: '239.1.2.3',
      port: 9999
    })
  })

  it('the injected random source draws in [0, 1)', () => {
    const draws = Array.from({ length: 1000 }, secureRandom)
    expect(draws.every((x) => x >= 0 && x < 1)).toBe(true)
    expect(new Set(draws).size).toBeGreaterThan(990)
  })
})
