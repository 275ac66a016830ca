import type { Logger, Startable } from '@mycelium/core-interfaces'
import type { NodePeers } from './node-peers.js'

/** A component the node started, by the name its logs and deadlines use. */
export interface StartedComponent {
  name: string
  component: Startable
}

/**
 * Starts each component in order, adding it to `started` once it is up. A
 * failure is logged and rethrown: the caller stops what did start (in
 * reverse), so a failed start leaves nothing running.
 */
export async function startInOrder(order: Array<[string, Startable]>, started: StartedComponent[], log: Logger): Promise<void> {
  for (const [name, component] of order) {
    log.info('starting component', { component: name })
    try {
      await component.start()
    } catch (err) {
      log.error('component failed to start', { component: name, err })
      throw err
    }
    started.push({ name, component })
  }
}

/**
 * Stops components in reverse order; each gets `deadlineMs(name)` before it
 * is left behind (logged), so one stuck stop never holds the others.
 */
export async function stopInReverse(started: StartedComponent[], deadlineMs: (name: string) => number, log: Logger): Promise<void> {
  for (const { name, component } of [...started].reverse()) {
    const ms = deadlineMs(name)
    log.info('stopping component', { component: name })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.resolve(component.stop()).catch((err: unknown) => log.error('component failed to stop', { component: name, err })),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn('component did not stop in time', { component: name, deadlineMs: ms })
          resolve()
        }, ms)
      })
    ])
    clearTimeout(timer)
  }
}

/** The node's components in start order (stopped in reverse); `peers` absent when peer networking is off or ISOLATEd. */
export function nodeStartOrder(p: {
  identity: Startable
  statusServer: Startable
  http: Startable
  runtime: Startable
  peers?: NodePeers | undefined
  components: Startable
  agent: Startable
  selfUpdate: Startable
  distress?: Startable | undefined
  watchdog: Startable
}): Array<[string, Startable]> {
  return [
    ['identity', p.identity],
    ['status', p.statusServer],
    ['http', p.http],
    ['k3s-runtime', p.runtime],
    ...(p.peers != null
      ? ([
          ['peer-assist', p.peers.server],
          ['peers', p.peers.monitor],
          ...(p.peers.multicast != null ? [['multicast', p.peers.multicast] as [string, Startable]] : [])
        ] as Array<[string, Startable]>)
      : []),
    // Before the agent: components a previous run left are adopted before assignments arrive.
    ['components', p.components],
    ['bootstrap-agent', p.agent],
    ['self-update', p.selfUpdate], // the release watch (update.watch) and the rest of an update it started
    ...(p.distress != null ? [['distress', p.distress] as [string, Startable]] : []),
    // Last: it watches the others, and is stopped first so it never restarts one the node is stopping.
    ['watchdog', p.watchdog]
  ]
}
