import * as grpc from '@grpc/grpc-js'
import { until } from '@mycelium/testing'
import { createPeerMonitor } from '../src/index.js'

describe('PeerMonitor ping jitter', () => {
  it('draws each ping wait from the injected random source', async () => {
    const drawn: number[] = []
    const monitor = createPeerMonitor(
      { credentials: grpc.credentials.createInsecure() },
      {
        selfNodeId: 'self',
        pingIntervalMs: 20,
        pingTimeoutMs: 20,
        random: () => {
          drawn.push(0.5)
          return 0.5
        }
      }
    )
    // Nothing listens on port 1: every ping fails, and the loop still waits (jittered) before the next.
    monitor.addPeer({ endpoint: { address: '127.0.0.1:1', expectedIdentity: '', zone: '', priority: 0 }, source: 'seed' })
    monitor.start()
    try {
      await until('three jittered waits', () => drawn.length >= 3, 10_000)
    } finally {
      await monitor.stop()
    }
    expect(drawn.length).toBeGreaterThanOrEqual(3)
  })
})
