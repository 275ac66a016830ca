import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { DevNetwork } from '@mycelium/dev-network'
import { fetchStatus } from '@mycelium/node-core'
import { Phase } from '@mycelium/core-interfaces'

const require = createRequire(import.meta.url)

/** The built node-core CLI (the bench's `build` dependency builds it). */
export const NODE_CORE_BIN = join(require.resolve('@mycelium/node-core/package.json'), '..', 'dist', 'bin.cjs')

export interface AgentProcess {
  child: ChildProcess
  socket: string
  startedAt: number
  exited: Promise<number | null>
  logs(): string
}

/** Writes a config for `nodeId` against `net` and starts `node-core run` as a child process (`nodeArgs`/`env`: node's own flags, extra environment). */
export function startAgentProcess(
  net: DevNetwork,
  dir: string,
  nodeId: string,
  joinToken: string,
  extra: string[] = [],
  spawnOptions: { nodeArgs?: string[]; env?: Record<string, string> } = {}
): AgentProcess {
  const socket = join(dir, `${nodeId}.sock`)
  const config = join(dir, `${nodeId}.yaml`)
  const tokenFile = join(dir, `${nodeId}.token`)
  writeFileSync(tokenFile, joinToken)
  writeFileSync(
    config,
    net.nodeConfigYaml({ nodeId, stateDir: join(dir, nodeId), joinTokenFile: tokenFile, socketPath: socket, logLevel: 'warn' }) + extra.join('\n')
  )
  const startedAt = performance.now()
  const child = spawn(process.execPath, [...(spawnOptions.nodeArgs ?? []), NODE_CORE_BIN, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...spawnOptions.env }
  })
  let logs = ''
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, socket, startedAt, exited, logs: () => logs }
}

/** Polls NodeStatus until `predicate`; returns ms since `since` (performance.now()). */
export async function untilStatus(socket: string, since: number, predicate: (phase: Phase) => boolean, timeoutMs = 60_000, pollMs = 5): Promise<number> {
  const end = Date.now() + timeoutMs
  for (;;) {
    try {
      const s = await fetchStatus(socket, 1000)
      if (predicate(s.phase)) return performance.now() - since
    } catch {
      // not serving yet
    }
    if (Date.now() > end) throw new Error(`status on ${socket} did not satisfy the condition within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, pollMs))
  }
}

export async function stopAgent(agent: AgentProcess): Promise<void> {
  agent.child.kill('SIGTERM')
  await agent.exited
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 'NaN')
  return kb * 1024
}

/** Wall time of `node -e 0` in ms: node's own floor on this machine. */
export function nodeFloorMs(): number {
  const t = performance.now()
  spawnSync(process.execPath, ['-e', '0'])
  return performance.now() - t
}
