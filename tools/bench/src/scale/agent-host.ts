/**
 * Child process: many composed nodes (MyceliumNode, status surfaces off) in
 * one process, as a fleet's share. Each node has its own identity, state
 * directory and connections: the nodes share the event loop and nothing else.
 * Phase changes go to the orchestrator in batches with
 * the wall-clock time they happened here.
 */
import { join } from 'node:path'
import { NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { MyceliumNode } from '@mycelium/node-core'
import { profileFromEnv } from './profile.js'
import { processStats, type AgentHostCommand, type AgentHostMessage, type TransitionRecord } from './protocol.js'

const writeProfile = profileFromEnv('agents')
const nodes: MyceliumNode[] = []
let pending: TransitionRecord[] = []
let flusher: NodeJS.Timeout | undefined
const reasons = new Set<string>()

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
          pending.push([index, t.to, Date.now()])
          // The first few distinct reasons a node left the happy path, for whoever reads the run.
          const key = t.reason.slice(0, 60)
          if ((t.to === Phase.RECOVERY || t.to === Phase.FALLBACK) && !reasons.has(key) && reasons.size < 8) {
            reasons.add(key)
            process.stderr.write(`agent-host ${process.pid}: ${n.nodeId} → ${Phase[t.to]}: ${t.reason}\n`)
          }
        })
        nodes.push(node)
      }
      flusher = setInterval(flush, 250)
      // Real nodes power on each with its own CPU; here they share one event loop, so at most
      // startConcurrency of them are on their way to MANAGED at once (else every TLS handshake of
      // the host waits behind the others' key generation and times out: a storm the fleet would not have).
      let next = 0
      let inflight = 0
      const launch = (): void => {
        while (inflight < init.startConcurrency && next < nodes.length) {
          const node = nodes[next++]!
          inflight++
          // The slot frees only at MANAGED: a node stuck retrying enrolment keeps it, so a slow manager
          // never has more than startConcurrency × hosts handshakes of a fresh start in flight.
          let freed = false
          const free = (): void => {
            if (freed) return
            freed = true
            inflight--
            launch()
          }
          node.agent.on('transition', (t) => void (t.to === Phase.MANAGED && free()))
          node.start().catch((err: Error) => {
            send({ type: 'failed', error: err.stack ?? String(err) })
            free()
          })
        }
      }
      launch()
      return
    }
    case 'stats':
      writeProfile()
      flush()
      send({
        type: 'stats',
        ...processStats(),
        heartbeatAcks: nodes.reduce((a, x) => a + x.agent.counters.heartbeatAcks, 0),
        managed: nodes.filter((x) => x.agent.phase === Phase.MANAGED).length,
        sample: ((x) => (x == null ? '' : JSON.stringify({ node: x.config.nodeId, ...x.agent.status().progress })))(
          nodes.find((x) => x.agent.phase !== Phase.MANAGED)
        )
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
