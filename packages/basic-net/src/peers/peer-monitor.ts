import * as grpc from '@grpc/grpc-js'
import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  InvalidConfigError,
  PeerAssistClient,
  strictClient,
  Phase,
  silentLogger,
  type Endpoint,
  type Logger,
  type PingResponse,
  type Startable
} from '@mycelium/core-interfaces'
import { anySignal } from '@mycelium/core-utils'
import {
  DEFAULT_EXPECTED_INTERVAL_MS,
  DEFAULT_SUSPECT_PHI,
  PhiAccrualDetector,
  type DetectorState,
  type DetectorTransition,
  type PhiAccrualInit
} from '../failure-detector.js'

/** Peers' answers are decoded strictly and bounded (a peer is not trusted). */
const StrictPeerAssistClient = strictClient(PeerAssistClient, { maxBytes: 8 * 1024 * 1024 })

export type PeerSource = 'seed' | 'spore' | 'multicast'

/** One row of the peer table. */
export interface PeerEntry {
  /** The PeerAssist address; the table's key. */
  address: string
  /** Learned from the peer's ping answer or its announcement. */
  nodeId?: string
  source: PeerSource
  state: DetectorState
  phi: number
  lastSeenMs?: number
  rttMs?: number
  phase?: Phase
  managersReachable?: boolean
}

export interface PeerMonitorEvents {
  'peer:up': [peer: PeerEntry]
  'peer:suspect': [peer: PeerEntry]
  'peer:down': [peer: PeerEntry]
}

export interface PeerMonitorComponents {
  logger?: Logger
  /** mTLS credentials requiring a node identity (basic-net `clientCredentials`). */
  credentials: grpc.ChannelCredentials
  /** This node's phase, sent in pings. */
  phase?: () => Phase
}

export interface PeerMonitorInit {
  /** This node's id: a peer answering with it is ourselves and is dropped. */
  selfNodeId: string
  /** @default DEFAULT_PING_INTERVAL_MS */
  pingIntervalMs?: number
  /** @default pingIntervalMs */
  pingTimeoutMs?: number
  /** @default expectedIntervalMs = pingIntervalMs, other defaults of PhiAccrualDetector */
  detector?: PhiAccrualInit
  channelOptions?: grpc.ChannelOptions
  /**
   * The jitter source of the ping interval, a number in [0, 1): each wait is
   * `pingIntervalMs × (0.9 + 0.2 × random())`. Injected by the composition
   * (node-core passes its CSPRNG-based source); tests pin it.
   * @default DEFAULT_PING_RANDOM
   */
  random?: () => number
}

/** The ping jitter source when the composition injects none. */
export const DEFAULT_PING_RANDOM: () => number = Math.random

/** Peers are pinged at the interval a failure detector expects by default. */
export const DEFAULT_PING_INTERVAL_MS = DEFAULT_EXPECTED_INTERVAL_MS

interface Tracked {
  entry: PeerEntry
  detector: PhiAccrualDetector
  client: PeerAssistClient
  controller: AbortController
  loop?: Promise<void>
}

/**
 * The peer table and its heartbeats: pings every peer over mTLS
 * (PeerAssist.Ping) and runs a phi-accrual detector per peer, emitting
 * `peer:up`, `peer:suspect` and `peer:down`.
 */
class DefaultPeerMonitor extends EventEmitter<PeerMonitorEvents> implements PeerMonitor {
  private readonly log: Logger
  private readonly peersByAddress = new Map<string, Tracked>()
  private intervalMs: number
  private timeoutMs: number
  private controller?: AbortController
  private evaluator?: NodeJS.Timeout
  private sequence = 0
  private readonly random: () => number

  constructor(
    private readonly components: PeerMonitorComponents,
    private readonly init: PeerMonitorInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('basic-net:peers')
    this.intervalMs = init.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS
    this.timeoutMs = init.pingTimeoutMs ?? this.intervalMs
    this.random = init.random ?? DEFAULT_PING_RANDOM
  }

  isStarted(): boolean {
    return this.controller != null
  }

  start(): void {
    if (this.controller != null) return
    this.controller = new AbortController()
    for (const tracked of this.peersByAddress.values()) this.startLoop(tracked)
    this.evaluator = setInterval(() => this.evaluateAll(), Math.max(10, Math.floor(this.intervalMs / 4)))
    this.evaluator.unref()
  }

  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    clearInterval(this.evaluator)
    const loops = [...this.peersByAddress.values()].map((t) => {
      t.controller.abort()
      return t.loop ?? Promise.resolve()
    })
    await Promise.allSettled(loops)
    for (const t of this.peersByAddress.values()) t.client.close()
    this.peersByAddress.clear()
  }

  /** Adds a peer (idempotent per address; a better-known id or source is kept). */
  addPeer(peer: { endpoint: Endpoint; source: PeerSource; nodeId?: string }): void {
    const address = peer.endpoint.address
    const existing = this.peersByAddress.get(address)
    if (existing != null) {
      if (peer.nodeId != null) existing.entry.nodeId = peer.nodeId
      return
    }
    if (peer.nodeId === this.init.selfNodeId) return
    const tracked: Tracked = {
      entry: { address, source: peer.source, state: 'unknown', phi: 0, ...(peer.nodeId != null ? { nodeId: peer.nodeId } : {}) },
      detector: new PhiAccrualDetector({ expectedIntervalMs: this.intervalMs, ...this.init.detector }),
      client: new StrictPeerAssistClient(address, this.components.credentials, this.init.channelOptions),
      controller: new AbortController()
    }
    this.peersByAddress.set(address, tracked)
    this.log.info('peer added', { address, source: peer.source, nodeId: peer.nodeId })
    if (this.controller != null) this.startLoop(tracked)
  }

  removePeer(address: string): void {
    const tracked = this.peersByAddress.get(address)
    if (tracked == null) return
    tracked.controller.abort()
    this.peersByAddress.delete(address)
    void tracked.loop?.finally(() => tracked.client.close())
  }

  /**
   * A reconfiguration of the running monitor: the ping interval applies
   * from each peer's next ping, the suspicion threshold (phi) to every
   * detector from its next evaluation. A value that is not above 0 is an
   * InvalidConfigError and changes nothing (never silently ignored while
   * shown in force).
   */
  retune(t: { pingIntervalMs?: number; suspectPhi?: number }): void {
    if (t.pingIntervalMs != null && !(Number.isFinite(t.pingIntervalMs) && t.pingIntervalMs > 0))
      throw new InvalidConfigError(`${t.pingIntervalMs} ms is not a ping interval (must be above 0)`, 'peer monitor pingIntervalMs')
    if (t.suspectPhi != null && !(Number.isFinite(t.suspectPhi) && t.suspectPhi > 0))
      throw new InvalidConfigError(`${t.suspectPhi} is not a suspicion threshold (must be above 0)`, 'peer monitor suspectPhi')
    if (t.pingIntervalMs != null) {
      this.timeoutMs = this.init.pingTimeoutMs ?? t.pingIntervalMs
      this.intervalMs = t.pingIntervalMs
    }
    if (t.suspectPhi != null) {
      this.init.detector = { ...this.init.detector, suspectPhi: t.suspectPhi }
      for (const tracked of this.peersByAddress.values()) tracked.detector.setSuspectPhi(t.suspectPhi)
    }
  }

  /** The settings in force (for status and tests). */
  settings(): { pingIntervalMs: number; suspectPhi: number } {
    return { pingIntervalMs: this.intervalMs, suspectPhi: this.init.detector?.suspectPhi ?? DEFAULT_SUSPECT_PHI }
  }

  /** A snapshot of the table. */
  peers(): PeerEntry[] {
    const now = Date.now()
    return [...this.peersByAddress.values()].map((t) => ({ ...t.entry, phi: t.detector.phi(now) }))
  }

  /** Peers currently alive, best first (for spore and distress requests). */
  alivePeers(): Endpoint[] {
    return this.peers()
      .filter((p) => p.state === 'alive')
      .sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
      .map((p) => ({ address: p.address, expectedIdentity: '', zone: '', priority: 0 }))
  }

  private startLoop(tracked: Tracked): void {
    // anySignal, not AbortSignal.any: the monitor's signal outlives every peer it tracks.
    const any = anySignal([this.controller!.signal, tracked.controller.signal])
    tracked.loop = this.pingLoop(tracked, any.signal).finally(any.dispose)
  }

  private async pingLoop(tracked: Tracked, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const started = Date.now()
      try {
        const res = await this.ping(tracked.client, signal)
        if (signal.aborted) return
        if (res.identity?.nodeId === this.init.selfNodeId) {
          this.log.debug('dropping a peer that is this node', { address: tracked.entry.address })
          this.removePeer(tracked.entry.address)
          return
        }
        const now = Date.now()
        Object.assign(tracked.entry, {
          lastSeenMs: now,
          rttMs: now - started,
          phase: res.phase,
          managersReachable: res.managersReachable,
          ...(res.identity?.nodeId ? { nodeId: res.identity.nodeId } : {})
        })
        this.report(tracked, tracked.detector.heartbeat(now))
      } catch {
        // A failed ping is just silence: the detector judges the silence.
      }
      // ±10% jitter keeps a fleet's pings from synchronising.
      const wait = Math.max(0, this.intervalMs * (0.9 + this.random() * 0.2) - (Date.now() - started))
      try {
        await sleep(wait, undefined, { signal, ref: false })
      } catch {
        return
      }
    }
  }

  private ping(client: PeerAssistClient, signal: AbortSignal): Promise<PingResponse> {
    return new Promise((resolve, reject) => {
      const call = client.ping(
        { sequence: ++this.sequence, sentAt: new Date(), phase: this.components.phase?.() ?? Phase.UNSPECIFIED },
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => (err != null ? reject(err) : resolve(res))
      )
      signal.addEventListener('abort', () => call.cancel(), { once: true })
    })
  }

  private evaluateAll(): void {
    const now = Date.now()
    for (const tracked of this.peersByAddress.values()) this.report(tracked, tracked.detector.evaluate(now))
  }

  private report(tracked: Tracked, transition: DetectorTransition | undefined): void {
    if (transition == null) return
    tracked.entry.state = transition.to
    tracked.entry.phi = transition.phi
    const peer = { ...tracked.entry }
    const fields = { address: peer.address, nodeId: peer.nodeId, from: transition.from, phi: Number(transition.phi.toFixed(2)) }
    if (transition.to === 'alive') {
      this.log.info('peer up', fields)
      this.emit('peer:up', peer)
    } else if (transition.to === 'suspect') {
      this.log.warn('peer suspect', fields)
      this.emit('peer:suspect', peer)
    } else if (transition.to === 'down') {
      this.log.warn('peer down', fields)
      this.emit('peer:down', peer)
    }
  }
}

/** The peer table and its heartbeats (see `createPeerMonitor`); start/stop are idempotent. */
export interface PeerMonitor extends EventEmitter<PeerMonitorEvents>, Startable {
  start(): void
  stop(): Promise<void>
  /** Adds a peer (idempotent per address; a better-known id or source is kept). */
  addPeer(peer: { endpoint: Endpoint; source: PeerSource; nodeId?: string }): void
  removePeer(address: string): void
  /**
   * A reconfiguration of the running monitor (ping interval from each peer's
   * next ping, suspicion threshold from each detector's next evaluation); a
   * value not above 0 is an InvalidConfigError and changes nothing.
   */
  retune(t: { pingIntervalMs?: number; suspectPhi?: number }): void
  /** The settings in force. */
  settings(): { pingIntervalMs: number; suspectPhi: number }
  /** A snapshot of the table. */
  peers(): PeerEntry[]
  /** Peers currently alive, best first (for spore and distress requests). */
  alivePeers(): Endpoint[]
}

export function createPeerMonitor(components: PeerMonitorComponents, init: PeerMonitorInit): PeerMonitor {
  return new DefaultPeerMonitor(components, init)
}
