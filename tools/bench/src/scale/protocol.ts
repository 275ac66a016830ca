/**
 * What the scale orchestrator and its child processes say to each other over
 * the fork IPC channel. The children share nothing but the network (gRPC over
 * mTLS on 127.0.0.1) and this channel, which carries only control and
 * measurements, batched so it costs the agents little.
 */

export interface ManagerHostInit {
  /** Dev network state directory (kept across a restart: CA, ports, tokens). */
  dir: string
  networkId: string
  heartbeatIntervalMs: number
  registrationRate: { burst: number; perSecond: number }
  /** Join tokens to mint (first start only). */
  joinTokens: number
  /** The manager's failover grace (dev-network `failoverGraceMs`). */
  failoverGraceMs?: number
}

export interface ManagerReady {
  type: 'ready'
  enrollment: string
  bootstrapFile: string
  tokens: string[]
  /** Wall clock (ms) at which the servers were listening. */
  atMs: number
}

export interface ProcessStats {
  /** process.cpuUsage() user + system, ms. */
  cpuMs: number
  rssBytes: number
  heapUsedBytes: number
}

export interface ManagerStats extends ProcessStats {
  type: 'stats'
  /** Heartbeats received (health reports, all nodes) since this process started. */
  heartbeats: number
  nodes: number
  managed: number
  /** Each node's last admitted registration (wall clock, ms), and the registrations refused. */
  admittedAtMs: number[]
  refused: number
  /** Refusals per node, highest. */
  maxRefusalsPerNode: number
  /** Encoded sizes (bytes) of one steady heartbeat and its ack (protobuf payload, sampled). */
  heartbeatBytes: number
  ackBytes: number
  /** Once a second since this process started: its CPU (ms, cumulative) and calls per method (cumulative, short names). */
  timeline: Array<{ atMs: number; cpuMs: number; calls: Record<string, number> }>
}

export interface AgentHostInit {
  dir: string
  networkId: string
  enrollment: string
  bootstrapFile: string
  nodes: { nodeId: string; joinToken: string }[]
  /** Nodes of this host on their way to MANAGED at once during the fresh start. */
  startConcurrency: number
  /** Reconnect backoff (ms) of every agent. */
  reconnect: { initialMs: number; maxMs: number }
}

/** [node index within the host, phase entered, wall clock ms]. */
export type TransitionRecord = [number, number, number]

export type AgentHostMessage =
  | { type: 'started' }
  | { type: 'transitions'; list: TransitionRecord[] }
  | (ProcessStats & {
      type: 'stats'
      heartbeatAcks: number
      managed: number
      /** One node not MANAGED: its progress (diagnosis). */ sample: string
    })
  | { type: 'stopped' }
  | { type: 'failed'; error: string }

export type AgentHostCommand = { type: 'init'; init: AgentHostInit } | { type: 'stats' } | { type: 'stop' }
export type ManagerHostCommand = { type: 'init'; init: ManagerHostInit } | { type: 'stats' }

export function processStats(): ProcessStats {
  const cpu = process.cpuUsage()
  const mem = process.memoryUsage()
  return { cpuMs: (cpu.user + cpu.system) / 1000, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed }
}
