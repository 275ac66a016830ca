import { request } from 'node:http'
import * as grpc from '@grpc/grpc-js'
import { NodeStatusClient, Phase, type Logger, type Startable } from '@mycelium/core-interfaces'
import type { BootstrapAgent } from '@mycelium/bootstrap-agent'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import type { ComponentManager } from '@mycelium/component-manager'
import { DEFAULT_WATCHDOG, Watchdog, type WatchdogInit, type WatchedComponent } from './watchdog.js'

/** The node's long-lived components the watchdog watches (node.ts hands them in). */
export interface NodeWatchSources {
  statusServer: Startable & { readonly addresses: readonly string[] }
  http: Startable & { readonly address: string }
  agent: BootstrapAgent
  runtime: K3sRuntime
  components: ComponentManager
  /** When the spore client last finished a poll of a source (spore-sources.ts `onPoll`); 0 before any. */
  lastSporePollMs: () => number
  /** The config's spore source timeout (a poll may take this long per source). */
  sporeSourceTimeoutMs: () => number
  /** Whether the node runs: a component found stopped then is a crash. */
  nodeStarted: () => boolean
}

/** Grace past the lease's end before a MANAGED agent that did not notice is judged stuck (its own check runs every interval/4). */
const LEASE_GRACE_MS = 2000

/** Asks the NodeStatus gRPC server for a status, as a client would. */
function statusAnswers(address: string, timeoutMs: number): Promise<boolean> {
  const client = new NodeStatusClient(address, grpc.credentials.createInsecure())
  return new Promise<boolean>((resolve, reject) => {
    client.getStatus({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err) => {
      client.close()
      if (err != null) reject(new Error(`NodeStatus at ${address}: ${err.details || err.message}`))
      else resolve(true)
    })
  })
}

/** GET /healthz on the HTTP status server, as a probe (kubelet, grpc_health_probe) would. */
function healthzAnswers(address: string, timeoutMs: number): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)]
  return new Promise<boolean>((resolve, reject) => {
    const req = request({ host, port: Number(port), path: '/healthz', timeout: timeoutMs }, (res) => {
      res.resume()
      if (res.statusCode === 200) resolve(true)
      else reject(new Error(`/healthz at ${address} answered ${res.statusCode}`))
    })
    req.on('timeout', () => req.destroy(new Error(`/healthz at ${address}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/**
 * What each core component must show to count as alive, and what a restart
 * restarts (its state is on disk: the agent re-registers from its stored
 * identity, config and journal; K3s itself is never stopped — only its
 * supervision is restarted, which adopts the running process):
 * - status-grpc / status-http: they answer a real request on their address
 *   (a hung handler or a dead listener fails the probe);
 * - heartbeat: a MANAGED agent's lease is renewed by acks; a lease past its
 *   end while the agent still says MANAGED means its heartbeat loop (and
 *   the link's own expiry check) stopped ticking;
 * - spores: the spore client polls its sources every refresh interval while
 *   it does not follow the Spore Manager; no finished poll for three
 *   intervals plus three source timeouts means its poll loop hung or died
 *   (the client is the agent's, so the agent restarts);
 * - k3s-runtime / components: their supervision runs while the node runs.
 */
export function nodeWatchedComponents(s: NodeWatchSources, probeTimeoutMs: () => number): WatchedComponent[] {
  let sporeClient: unknown
  let sporeWatchSinceMs = Date.now()
  return [
    {
      name: 'status-grpc',
      parts: [s.statusServer],
      probe: () => {
        const address = s.statusServer.addresses[0]
        return address == null || !s.nodeStarted() ? true : statusAnswers(address, probeTimeoutMs())
      }
    },
    {
      name: 'status-http',
      parts: [s.http],
      probe: () => (s.http.address === '' || !s.nodeStarted() ? true : healthzAnswers(s.http.address, probeTimeoutMs()))
    },
    {
      name: 'heartbeat',
      parts: [s.agent],
      probe: () => {
        if (s.agent.phase !== Phase.MANAGED) return true
        const expires = s.agent.status().managers[0]?.leaseExpiresAt?.getTime()
        if (expires == null || Date.now() <= expires + LEASE_GRACE_MS) return true
        throw new Error(`MANAGED, but the lease ended ${new Date(expires).toISOString()} without renewal (heartbeat loop stalled)`)
      }
    },
    {
      name: 'spores',
      parts: [s.agent],
      probe: () => {
        const client = s.agent.sporeClient
        if (client !== sporeClient) {
          // A new client (a new agent run): its loop is judged from now.
          sporeClient = client
          sporeWatchSinceMs = Date.now()
        }
        if (client == null || client.status().mode === 'spore-manager') return true
        const stallMs = 3 * client.timing().refreshIntervalMs + 3 * s.sporeSourceTimeoutMs()
        const last = Math.max(s.lastSporePollMs(), sporeWatchSinceMs)
        if (Date.now() - last <= stallMs) return true
        throw new Error(`no spore source polled for ${Math.round((Date.now() - last) / 1000)} s (refresh loop stalled)`)
      }
    },
    {
      name: 'k3s-runtime',
      parts: [s.runtime],
      probe: () => !s.nodeStarted() || s.runtime.isStarted()
    },
    {
      name: 'components',
      parts: [s.components],
      probe: () => !s.nodeStarted() || s.components.isStarted()
    }
  ]
}

/** The node's watchdog over `nodeWatchedComponents`; every change of what it reports is a status change. */
export function createNodeWatchdog(s: NodeWatchSources, log: Logger, init: WatchdogInit, changed: () => void): Watchdog {
  const watchdog = new Watchdog(
    nodeWatchedComponents(s, () => init.probeTimeoutMs ?? DEFAULT_WATCHDOG.probeTimeoutMs),
    log.forComponent('node-core:watchdog'),
    init
  )
  watchdog.onChange(changed)
  return watchdog
}
