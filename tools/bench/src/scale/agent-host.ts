/**
 * Child process: many composed nodes (MyceliumNode, status surfaces off) in
 * one process, as a fleet's share. Each node has its own identity, state
 * directory and connections: the nodes share the event loop and nothing else.
 * Phase changes to MANAGED and FALLBACK go to the orchestrator in batches with
 * the wall-clock time they happened here.
 */
import { join } from 'node:path'
import { NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { MyceliumNode } from '@mycelium/node-core'
import { processStats, type AgentHostCommand, type AgentHostMessage, type TransitionRecord } from './protocol.js'

const nodes: MyceliumNode[] = []
let pending: TransitionRecord[] = []
let flusher: NodeJS.Timeout | undefined

function send(message: AgentHostMessage): void {
  process.send?.(message)
}

function flush(): void {
  if (pending.length === 0) return
  send({ type: 'transitions', list: pending })
  pending = []
}

process.on('message', (command: AgentHostCommand) => {
  switch (command.type) {
    case 'init': {
      const init = command.init
      for (const [index, n] of init.nodes.entries()) {
        const config = NodeConfig.fromPartial({
          networkId: init.networkId,
          nodeId: n.nodeId,
          stateDir: join(init.dir, n.nodeId),
          identity: { enrollmentEndpoints: [{ address: init.enrollment, expectedIdentity: '', zone: '', priority: 0 }] },
          discovery: { bootstrapFile: init.bootstrapFile },
          reconnect: {
            initial: { seconds: Math.floor(init.reconnect.initialMs / 1000), nanos: (init.reconnect.initialMs % 1000) * 1e6 },
            max: { seconds: Math.floor(init.reconnect.maxMs / 1000), nanos: (init.reconnect.maxMs % 1000) * 1e6 }
          },
          status: { socketPath: 'off', httpListenAddress: 'off' }
        })
        const node = new MyceliumNode(config, silentLogger(), { joinToken: n.joinToken })
        node.agent.on('transition', (t) => {
          if (t.to === Phase.MANAGED || t.to === Phase.FALLBACK) pending.push([index, t.to, Date.now()])
        })
        nodes.push(node)
      }
      flusher = setInterval(flush, 250)
      void Promise.all(nodes.map((x) => x.start())).then(
        () => send({ type: 'started' }),
        (err: Error) => send({ type: 'failed', error: err.stack ?? String(err) })
      )
      return
    }
    case 'stats':
      flush()
      send({
        type: 'stats',
        ...processStats(),
        heartbeatAcks: nodes.reduce((a, x) => a + x.agent.counters.heartbeatAcks, 0),
        managed: nodes.filter((x) => x.agent.phase === Phase.MANAGED).length
      })
      return
    case 'stop':
      clearInterval(flusher)
      flush()
      void Promise.allSettled(nodes.map((x) => x.stop())).then(() => {
        send({ type: 'stopped' })
        process.disconnect?.()
      })
      return
  }
})
process.on('disconnect', () => process.exit(0))
