import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import { Availability, HealthState, Phase, type Logger, type Startable, type StatusReport } from '@mycelium/core-interfaces'
import { registerComponentMetrics } from './components-status.js'
import { registerDistressMetrics } from './distress-metrics.js'

export interface HttpMetricsSource {
  status(): StatusReport
  counters(): {
    transitions: Record<string, number>
    steps: number
    reconnectAttempts: number
    heartbeatAcks: number
    capabilityUpdates: number
  }
}

const PHASES = [Phase.BOOTSTRAP, Phase.DISCOVERY, Phase.REGISTRATION, Phase.HANDOFF, Phase.MANAGED, Phase.FALLBACK, Phase.RECOVERY]

/**
 * Localhost HTTP: /healthz (the process serves), /readyz (MANAGED, or
 * FALLBACK when `readyInFallback`, and in both cases the aggregated node
 * health not UNHEALTHY), /metrics (Prometheus text, one registry per node so
 * several nodes can share a process).
 */
export class HttpStatusServer implements Startable {
  private server?: Server
  /** Made on the first scrape: prom-client is loaded only then (idle RSS). */
  private registry?: Promise<Registry>
  address = ''

  constructor(
    private readonly source: HttpMetricsSource,
    private readonly init: { listenAddress: string; readyInFallback: boolean },
    private readonly log: Logger
  ) {}

  /**
   * The metrics registry, built on the first /metrics request. Nothing is lost
   * by waiting: every metric is computed at scrape time (`collect`) from the
   * agent's own counters and status, which count from the start.
   */
  private metricsRegistry(): Promise<Registry> {
    this.registry ??= import('prom-client').then(({ Counter, Gauge, Registry }) => this.buildRegistry(Counter, Gauge, new Registry()))
    return this.registry
  }

  private buildRegistry(
    Counter: typeof import('prom-client').Counter,
    Gauge: typeof import('prom-client').Gauge,
    registry: Registry
  ): Registry {
    const source = this.source
    new Gauge({
      name: 'mycelium_phase',
      help: '1 for the phase the node is in, 0 for the others',
      labelNames: ['phase'],
      registers: [registry],
      collect() {
        const current = source.status().phase
        for (const p of PHASES) this.set({ phase: Phase[p] }, p === current ? 1 : 0)
      }
    })
    new Counter({
      name: 'mycelium_phase_transitions_total',
      help: 'Phase transitions since start, by phase entered',
      labelNames: ['to'],
      registers: [registry],
      collect() {
        this.reset()
        for (const [to, n] of Object.entries(source.counters().transitions)) this.inc({ to }, n)
      }
    })
    new Gauge({
      name: 'mycelium_identity_expiry_timestamp_seconds',
      help: "The node certificate's notAfter (Unix seconds); absent without a certificate",
      registers: [registry],
      collect() {
        this.reset()
        const notAfter = source.status().identityStatus?.notAfter
        if (notAfter != null) this.set(notAfter.getTime() / 1000)
      }
    })
    new Counter({
      name: 'mycelium_reconnect_attempts_total',
      help: 'Reconnection attempts in FALLBACK',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.counters().reconnectAttempts)
      }
    })
    new Counter({
      name: 'mycelium_phase_steps_total',
      help: 'Steps inside a phase (retry attempts, enrolment), which are not phase transitions',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.counters().steps)
      }
    })
    new Counter({
      name: 'mycelium_capability_updates_total',
      help: 'Capability changes sent to the Network Manager with a heartbeat',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.counters().capabilityUpdates)
      }
    })
    new Counter({
      name: 'mycelium_heartbeat_acks_total',
      help: 'Heartbeats acknowledged by the Network Manager',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.counters().heartbeatAcks)
      }
    })
    new Gauge({
      name: 'mycelium_heartbeat_rtt_seconds',
      help: 'Round trip of the last acknowledged heartbeat',
      registers: [registry],
      collect() {
        this.set((source.status().managers[0]?.heartbeatRttMs ?? 0) / 1000)
      }
    })
    new Gauge({
      name: 'mycelium_runtime_available',
      help: '1 while the container runtime (K3s) is available, 0 when unavailable or degraded',
      labelNames: ['runtime'],
      registers: [registry],
      collect() {
        const r = source.status().runtime
        this.reset()
        this.set({ runtime: r?.name || 'none' }, r?.availability === Availability.AVAILABLE ? 1 : 0)
      }
    })
    new Gauge({
      name: 'mycelium_workloads',
      help: 'Pods and containers the container runtime lists, by kind and state',
      labelNames: ['kind', 'state'],
      registers: [registry],
      collect() {
        this.reset()
        for (const w of source.status().workloads) this.inc({ kind: w.kind, state: w.state })
      }
    })
    new Gauge({
      name: 'mycelium_component_restarts',
      help: 'Restarts of a core component after failures (k3s-runtime: K3s restarts after crashes)',
      labelNames: ['component'],
      registers: [registry],
      collect() {
        this.reset()
        for (const c of source.status().components) this.set({ component: c.name }, c.restarts)
      }
    })
    new Gauge({
      name: 'mycelium_node_health',
      help: '1 for the aggregated node health state (HEALTHY, DEGRADED, UNHEALTHY), 0 for the others',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const h = source.status().health
        for (const st of [HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY])
          this.set({ state: HealthState[st] }, st === h ? 1 : 0)
      }
    })
    new Gauge({
      name: 'mycelium_update_info',
      help: 'Self-update: 1, labelled with the slot, the running version, whether it is on trial and the last outcome (absent without the slot launcher)',
      labelNames: ['slot', 'version', 'trial', 'last_outcome', 'last_version'],
      registers: [registry],
      collect() {
        this.reset()
        const u = source.status().update
        if (u != null)
          this.set(
            {
              slot: u.slot,
              version: u.version,
              trial: u.trialVersion !== '' ? 'true' : 'false',
              last_outcome: u.lastOutcome,
              last_version: u.lastVersion
            },
            1
          )
      }
    })
    new Counter({
      name: 'mycelium_spores_rejected_total',
      help: 'Spores rejected by verification',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.status().spores?.rejectedCount ?? 0)
      }
    })
    registerComponentMetrics(Gauge, registry, () => source.status())
    registerDistressMetrics(Counter, Gauge, registry, () => source.status())
    return registry
  }

  isStarted(): boolean {
    return this.server != null
  }

  async start(): Promise<void> {
    if (this.server != null || this.init.listenAddress === '' || this.init.listenAddress === 'off') return
    const server = createServer((req, res) => {
      void (async () => {
        const status = this.source.status()
        if (req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
        } else if (req.url === '/readyz') {
          const phaseReady = status.phase === Phase.MANAGED || (this.init.readyInFallback && status.phase === Phase.FALLBACK)
          const ready = phaseReady && status.health !== HealthState.UNHEALTHY
          const health = `${HealthState[status.health] ?? 'UNKNOWN'}${status.healthReason ? `: ${status.healthReason}` : ''}`
          res
            .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
            .end(`${Phase[status.phase]}: ${status.reason}\nhealth ${health}\n`)
        } else if (req.url === '/metrics') {
          const registry = await this.metricsRegistry()
          res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics())
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: /healthz /readyz /metrics\n')
        }
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err))
      })
    })
    const i = this.init.listenAddress.lastIndexOf(':')
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(Number(this.init.listenAddress.slice(i + 1)), this.init.listenAddress.slice(0, i), () => resolve())
    })
    this.server = server
    this.address = `${this.init.listenAddress.slice(0, i)}:${(server.address() as AddressInfo).port}`
    this.log.info('HTTP status serving', { address: this.address, paths: ['/healthz', '/readyz', '/metrics'] })
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server != null) {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
