import type { MyceliumNode } from './node.js'
import { formatStatusLine } from './status-command.js'

/**
 * `node-core dev` on a terminal: one readable line per node whenever what a
 * person watches changes — phase and why, health, the manager link, peers,
 * config version — instead of the JSON log lines (those stay when stdout is
 * not a TTY). Driven by the agent's and the peer monitor's events, plus a
 * one-second look for what changes without an event (the manager link's
 * state); a line is printed only when it differs from the node's last one.
 */
export function attachDevView(nodes: MyceliumNode[], out: (text: string) => void, intervalMs = 1000): () => void {
  const offs: Array<() => void> = []
  const checks: Array<() => void> = []
  const width = Math.max(...nodes.map((n) => n.config.nodeId.length))
  for (const node of nodes) {
    let last = ''
    const print = (): void => {
      const line = formatStatusLine(node.status())
      if (line === last) return
      last = line
      out(`${new Date().toISOString().slice(11, 19)}  ${node.config.nodeId.padEnd(width)}  ${line}\n`)
    }
    checks.push(print)
    node.agent.on('transition', print)
    offs.push(() => node.agent.off('transition', print))
    const monitor = node.peers?.monitor
    for (const kind of ['peer:up', 'peer:suspect', 'peer:down'] as const) {
      monitor?.on(kind, print)
      offs.push(() => monitor?.off(kind, print))
    }
    print()
  }
  const tick = setInterval(() => {
    for (const check of checks) check()
  }, intervalMs)
  tick.unref()
  return () => {
    clearInterval(tick)
    for (const off of offs) off()
  }
}
