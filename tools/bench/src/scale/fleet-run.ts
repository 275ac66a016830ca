import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { getPriority, loadavg, setPriority, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Phase } from '@mycelium/core-interfaces'
import type { AgentHostCommand, AgentHostMessage, ManagerHostCommand, ManagerHostInit, ManagerReady, ManagerStats } from './protocol.js'

/**
 * A fleet across processes: the dev network alone in one child process, the
 * agents split over `hosts` child processes (many composed nodes each). It
 * starts the fleet, measures a steady state, then really restarts the
 * manager (SIGKILL, an outage, a new process on the same state) and records
 * when every agent is MANAGED again.
 */
export interface ScaleRunInit {
  agents: number
  /** Child processes hosting agents. @default max(2, ceil(agents / 250)) */
  hosts?: number
  /** @default 1000 */
  heartbeatIntervalMs?: number
  /** The manager's registration admission. @default { burst: 5, perSecond: 40 } */
  registrationRate?: { burst: number; perSecond: number }
  /** The first manager's (before the restart), when the fresh start should go faster. @default registrationRate */
  startRegistrationRate?: { burst: number; perSecond: number }
  /** Between the kill and the new manager process. @default 3000 */
  outageMs?: number
  /** Agents' own backoff. @default { initialMs: 500, maxMs: 8000 } */
  reconnect?: { initialMs: number; maxMs: number }
  /** Fresh start: nodes per host on their way to MANAGED at once (see agent-host.ts). @default 8 */
  startConcurrency?: number
  /** Steady state measured for heartbeat cost; 0 skips it. @default 10000 */
  steadyMs?: number
  /** Longest wait for all MANAGED (start, and again after the restart). @default max(300 s, 1 s per agent) */
  budgetMs?: number
  /** The built child entries (dist/scale-manager-host.js, dist/scale-agent-host.js). */
  entries: { manager: string; agent: string }
  /** Progress lines. */
  log?: (line: string) => void
  /**
   * The manager's failover grace: for this long after it starts, its leases last this much longer, so
   * acks it sends late while the whole fleet comes back do not expire leases of nodes it just admitted
   * (dev-network `failoverGraceMs`). @default 60000
   */
  failoverGraceMs?: number
  /** The agent hosts run at niceness +10, so the manager is not starved by the fleet that shares its cores. @default true */
  agentsYield?: boolean
}

export interface ScaleRunResult {
  agents: number
  hosts: number
  startToAllManagedS: number
  restartToAllManagedS: number
  restartTo99PercentManagedS: number
  /** Agents entering MANAGED per second after the new manager process was started (index = second). */
  reconnectsPerSecond: number[]
  /** Registrations the new manager admitted per second (same origin). */
  admissionsPerSecond: number[]
  maxReconnectsInOneSecond: number
  maxAdmissionsInOneSecond: number
  /** Refused registrations after the restart, and the most refusals one node got. */
  refusals: number
  maxRefusalsPerNode: number
  /** Agents not MANAGED again when the budget ran out (0 when all came back). */
  notManagedAgain: number
  managerCpuPerHeartbeatMs: number
  agentCpuPerHeartbeatMs: number
  heartbeatBytes: number
  ackBytes: number
  managerRssMB: number
  managerHeapPerNodeKB: number
  /** Manager CPU from its new start to all MANAGED, per admitted registration. */
  managerCpuPerReconnectMs: number
  /** 1-minute load average at start, steady state, restart, end. */
  loadAverage: { start: number; steady: number; restart: number; end: number }
}

class Host {
  readonly child: ChildProcess
  private readonly waiters: Array<{ type: string; resolve: (m: never) => void; reject: (err: Error) => void }> = []
  /** Set when the child reported a failure: every wait then fails with it. */
  private failure?: Error
  constructor(entry: string, onMessage: (m: AgentHostMessage | ManagerStats | ManagerReady) => void) {
    this.child = fork(entry, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' })
    this.child.on('message', (m: { type: string; error?: string }) => {
      if (m.type === 'failed') {
        this.failure = new Error(`child ${entry} failed: ${m.error}`)
        for (const w of this.waiters.splice(0)) w.reject(this.failure)
        return
      }
      onMessage(m as never)
      const i = this.waiters.findIndex((w) => w.type === m.type)
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m as never)
    })
  }
  send(command: AgentHostCommand | ManagerHostCommand): void {
    this.child.send(command)
  }
  next<T>(type: string, timeoutMs = 120_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.failure != null) return reject(this.failure)
      const timer = setTimeout(() => reject(new Error(`no "${type}" from ${this.child.pid} within ${timeoutMs} ms`)), timeoutMs)
      this.waiters.push({
        type,
        resolve: (m: T) => (clearTimeout(timer), resolve(m)),
        reject: (err: Error) => (clearTimeout(timer), reject(err))
      } as never)
    })
  }
  async kill(): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    const exited = new Promise((r) => this.child.once('exit', r))
    this.child.kill('SIGKILL')
    await exited
  }
}

const perSecond = (times: number[], originMs: number): number[] => {
  const out: number[] = []
  for (const t of times) {
    const s = Math.max(0, Math.floor((t - originMs) / 1000))
    while (out.length <= s) out.push(0)
    out[s]!++
  }
  return out
}

export async function runScaleFleet(init: ScaleRunInit): Promise<ScaleRunResult> {
  const n = init.agents
  const hostCount = init.hosts ?? Math.max(2, Math.ceil(n / 250))
  const log = init.log ?? (() => undefined)
  const budgetMs = init.budgetMs ?? Math.max(300_000, n * 1000)
  const dir = mkdtempSync(join(tmpdir(), `bench-scale-${n}-`))
  const managerInit: ManagerHostInit = {
    dir: join(dir, 'network'),
    networkId: 'bench',
    heartbeatIntervalMs: init.heartbeatIntervalMs ?? 1000,
    registrationRate: init.registrationRate ?? { burst: 5, perSecond: 40 },
    joinTokens: n,
    failoverGraceMs: init.failoverGraceMs ?? 60_000
  }
  // Per node: its last phase, and when it first became MANAGED after the manager was killed.
  const phase = new Uint8Array(n)
  const back = new Float64Array(n)
  let killedAtMs = Infinity
  const onManager = (): void => undefined
  const startManager = async (tokens: number): Promise<{ host: Host; ready: ManagerReady }> => {
    const host = new Host(init.entries.manager, onManager)
    const registrationRate = tokens > 0 ? (init.startRegistrationRate ?? managerInit.registrationRate) : managerInit.registrationRate
    host.send({ type: 'init', init: { ...managerInit, registrationRate, joinTokens: tokens } })
    return { host, ready: await host.next<ManagerReady>('ready') }
  }
  const managerStatsNow = async (host: Host): Promise<ManagerStats> => {
    const s = host.next<ManagerStats>('stats')
    host.send({ type: 'stats' })
    return s
  }
  const agentHosts: Host[] = []
  const agentStats = async (): Promise<{ cpuMs: number; acks: number }> => {
    const all = await Promise.all(
      agentHosts.map((h) => {
        const s = h.next<{ cpuMs: number; heartbeatAcks: number }>('stats')
        h.send({ type: 'stats' })
        return s
      })
    )
    return { cpuMs: all.reduce((a, s) => a + s.cpuMs, 0), acks: all.reduce((a, s) => a + s.heartbeatAcks, 0) }
  }
  const phases = (): string => {
    const by = new Map<string, number>()
    for (const p of phase) by.set(Phase[p] ?? String(p), (by.get(Phase[p] ?? String(p)) ?? 0) + 1)
    return [...by].map(([k, v]) => `${k}:${v}`).join(' ')
  }
  const waitFor = async (what: string, done: () => boolean): Promise<boolean> => {
    const started = Date.now()
    let shown = started
    while (!done()) {
      if (Date.now() - started > budgetMs) {
        log(`    ${what}: budget of ${budgetMs / 1000} s ran out (${phases()})`)
        return false
      }
      if (Date.now() - shown > 15_000) {
        shown = Date.now()
        const sample = agentHosts[0]?.next<{ sample: string }>('stats', 5000).catch(() => ({ sample: '?' }))
        agentHosts[0]?.send({ type: 'stats' })
        log(`    ${what} +${Math.round((shown - started) / 1000)} s: ${phases()} (load ${load()}) ${(await sample)?.sample ?? ''}`)
      }
      await sleep(250)
    }
    return true
  }
  const load = (): number => Math.round(loadavg()[0]! * 10) / 10

  let manager = await startManager(n)
  try {
    const loadStart = load()
    const base = await managerStatsNow(manager.host)
    const perHost = Math.ceil(n / hostCount)
    for (let h = 0; h < hostCount; h++) {
      const first = h * perHost
      const count = Math.min(perHost, n - first)
      if (count <= 0) break
      const host = new Host(init.entries.agent, (m) => {
        if (m.type !== 'transitions') return
        for (const [i, to, at] of m.list) {
          phase[first + i] = to
          if (to === (Phase.MANAGED as number) && at > killedAtMs && back[first + i] === 0) back[first + i] = at
        }
      })
      host.send({
        type: 'init',
        init: {
          dir: join(dir, `host-${h}`),
          networkId: managerInit.networkId,
          enrollment: manager.ready.enrollment,
          bootstrapFile: manager.ready.bootstrapFile,
          nodes: Array.from({ length: count }, (_, i) => ({
            nodeId: `n-${String(first + i).padStart(4, '0')}`,
            joinToken: manager.ready.tokens[first + i]!
          })),
          reconnect: init.reconnect ?? { initialMs: 500, maxMs: 8000 },
          startConcurrency: init.startConcurrency ?? 8
        }
      })
      // A real manager has its own machine; here 1,000 agents share its 2 cores, and a starved manager makes
      // its own clients time out (a storm this bench would have caused, not the fleet). The agents yield to it:
      // niceness +10 (no privilege needed); the agents' and the manager's CPU are still measured apart.
      if (init.agentsYield !== false && host.child.pid != null) {
        try {
          setPriority(host.child.pid, Math.min(19, getPriority(process.pid) + 10))
        } catch {
          log("    could not lower the agent hosts' priority; the manager shares the CPU with them equally")
        }
      }
      agentHosts.push(host)
    }
    const t0 = Date.now()
    const MANAGED: number = Phase.MANAGED
    const managedCount = (): number => phase.reduce((a, p) => a + (p === MANAGED ? 1 : 0), 0)
    if (!(await waitFor('start', () => managedCount() === n))) throw new Error(`only ${managedCount()} of ${n} MANAGED after the start`)
    const startToAll = (Date.now() - t0) / 1000
    log(`    ${n} agents MANAGED from a fresh start in ${startToAll.toFixed(1)} s (load ${load()})`)

    // Steady state: heartbeat cost on each side.
    const steadyMs = init.steadyMs ?? 10_000
    const m0 = await managerStatsNow(manager.host)
    const a0 = await agentStats()
    await sleep(steadyMs)
    const m1 = await managerStatsNow(manager.host)
    const a1 = await agentStats()
    const loadSteady = load()
    const managerHeartbeats = Math.max(1, m1.heartbeats - m0.heartbeats)
    const agentAcks = Math.max(1, a1.acks - a0.acks)

    // The restart: kill, outage, a new process on the same state.
    killedAtMs = Date.now()
    await manager.host.kill()
    await sleep(init.outageMs ?? 3000)
    // The restart is the fork of the new manager process: its own start (and that of its listeners) counts.
    const restartedAtMs = Date.now()
    manager = await startManager(0)
    const mReady = await managerStatsNow(manager.host)
    const loadRestart = load()
    const allBack = await waitFor('restart', () => back.every((t) => t > 0))
    const mEnd = await managerStatsNow(manager.host)
    // What the new manager process was asked, second by second: where its CPU went while the fleet came back.
    for (const [i, t] of mEnd.timeline.entries()) {
      const before = mEnd.timeline[i - 1]
      if (before == null || i > 120) continue
      const calls = Object.entries(t.calls)
        .map(([k, v]) => [k, v - (before.calls[k] ?? 0)] as const)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k}:${v}`)
      log(`    manager +${Math.round((t.atMs - restartedAtMs) / 1000)} s: cpu ${Math.round(t.cpuMs - before.cpuMs)} ms ${calls.join(' ')}`)
    }
    const admitted = mEnd.admittedAtMs
    const times = [...back].filter((t) => t > 0).sort((a, b) => a - b)
    const reconnects = perSecond(times, restartedAtMs)
    const admissions = perSecond(admitted, restartedAtMs)
    const result: ScaleRunResult = {
      agents: n,
      hosts: agentHosts.length,
      startToAllManagedS: startToAll,
      restartToAllManagedS: allBack ? (times.at(-1)! - restartedAtMs) / 1000 : NaN,
      restartTo99PercentManagedS: times.length >= Math.ceil(0.99 * n) ? (times[Math.ceil(0.99 * n) - 1]! - restartedAtMs) / 1000 : NaN,
      reconnectsPerSecond: reconnects,
      admissionsPerSecond: admissions,
      maxReconnectsInOneSecond: Math.max(0, ...reconnects),
      maxAdmissionsInOneSecond: Math.max(0, ...admissions),
      refusals: mEnd.refused,
      maxRefusalsPerNode: mEnd.maxRefusalsPerNode,
      notManagedAgain: n - times.length,
      managerCpuPerHeartbeatMs: (m1.cpuMs - m0.cpuMs) / managerHeartbeats,
      agentCpuPerHeartbeatMs: (a1.cpuMs - a0.cpuMs) / agentAcks,
      heartbeatBytes: m1.heartbeatBytes,
      ackBytes: m1.ackBytes,
      managerRssMB: m1.rssBytes / 2 ** 20,
      managerHeapPerNodeKB: (m1.heapUsedBytes - base.heapUsedBytes) / n / 1024,
      // What the storm cost the manager beyond its heartbeats (CPU from listening to all back, less the heartbeats' share).
      managerCpuPerReconnectMs:
        (mEnd.cpuMs - mReady.cpuMs - (mEnd.heartbeats - mReady.heartbeats) * ((m1.cpuMs - m0.cpuMs) / managerHeartbeats)) /
        Math.max(1, admitted.length),
      loadAverage: { start: loadStart, steady: loadSteady, restart: loadRestart, end: load() }
    }
    return result
  } finally {
    await Promise.all(
      agentHosts.map(async (h) => {
        const stopped = h.next('stopped', 60_000).catch(() => undefined)
        h.send({ type: 'stop' })
        await stopped
        await h.kill()
      })
    )
    await manager.host.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}
