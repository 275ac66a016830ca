import { createSocket, type Socket } from 'node:dgram'
import { EventEmitter } from 'node:events'
import { silentLogger, type Endpoint, type Logger, type Startable } from '@mycelium/core-interfaces'
import type { IdentityStore } from '../identity/identity-store.js'
import { announcedEndpoints, signAnnouncement, verifyAnnouncement, type IgnoreReason } from './announcement.js'

export interface MulticastDiscoveryComponents {
  logger?: Logger
  /** Signs our announcements and provides the CA that others' must chain to. */
  identity: IdentityStore
}

export interface MulticastDiscoveryInit {
  networkId: string
  nodeId: string
  /** Our PeerAssist endpoints, announced to the LAN. */
  endpoints: () => Endpoint[]
  /** @default "239.77.0.1" */
  group?: string
  /** UDP port (all nodes of a LAN use the same). @default 7946 */
  port?: number
  /** Address of the interface to join the group on and send from. */
  interfaceAddress?: string
  /** Join and send to the group. Off: only `unicastTargets` are used. @default true */
  multicast?: boolean
  /** Extra "host:port" targets, for networks without multicast. */
  unicastTargets?: string[]
  /** @default 2000 */
  announceIntervalMs?: number
  /** Older announcements are ignored. @default 30000 */
  maxAgeMs?: number
}

export const DEFAULT_MULTICAST_GROUP = '239.77.0.1'
export const DEFAULT_MULTICAST_PORT = 7946

export interface DiscoveredPeer {
  nodeId: string
  endpoints: Endpoint[]
  /** Where the datagram came from. */
  from: string
}

export interface MulticastDiscoveryEvents {
  peer: [peer: DiscoveredPeer]
}

export interface DiscoveryCounters {
  sent: number
  accepted: number
  ignored: Record<IgnoreReason, number>
}

/**
 * LAN discovery: announces this node (signed, with its certificate chain)
 * over UDP multicast and listens for others. Only announcements that verify
 * against the network CA are reported; everything else is ignored and counted.
 */
class DefaultMulticastDiscovery extends EventEmitter<MulticastDiscoveryEvents> implements MulticastDiscovery {
  private readonly log: Logger
  private socket?: Socket
  private timer?: NodeJS.Timeout
  private sequence = 0
  private readonly counts: DiscoveryCounters = {
    sent: 0,
    accepted: 0,
    ignored: {
      malformed: 0,
      unsigned: 0,
      'untrusted-certificate': 0,
      'foreign-network': 0,
      'bad-signature': 0,
      'identity-mismatch': 0,
      stale: 0,
      self: 0
    }
  }

  constructor(
    private readonly components: MulticastDiscoveryComponents,
    private readonly init: MulticastDiscoveryInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('basic-net:multicast')
  }

  get counters(): DiscoveryCounters {
    return { ...this.counts, ignored: { ...this.counts.ignored } }
  }

  /** The bound UDP port (useful when `port` is 0). */
  get port(): number {
    return this.socket?.address().port ?? 0
  }

  isStarted(): boolean {
    return this.socket != null
  }

  async start(): Promise<void> {
    if (this.socket != null) return
    const socket = createSocket({ type: 'udp4', reuseAddr: true })
    socket.on('message', (msg, rinfo) => this.receive(msg, `${rinfo.address}:${rinfo.port}`))
    socket.on('error', (err) => this.log.warn('discovery socket error', { err }))
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject)
        socket.bind(this.init.port ?? DEFAULT_MULTICAST_PORT, () => {
          socket.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      socket.close() // a failed start leaves no socket behind
      throw err
    }
    if (this.socket != null) {
      // A concurrent start() bound first: keep its socket.
      socket.close()
      return
    }
    if (this.init.multicast !== false) {
      try {
        socket.addMembership(this.group, this.init.interfaceAddress)
        if (this.init.interfaceAddress != null) socket.setMulticastInterface(this.init.interfaceAddress)
        socket.setMulticastTTL(1) // stay on the LAN
        socket.setMulticastLoopback(true)
      } catch (err) {
        this.log.warn('multicast unavailable here; announcing to unicast targets only', { err })
      }
    }
    this.socket = socket
    this.announce()
    this.timer = setInterval(() => this.announce(), this.init.announceIntervalMs ?? 2000)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    const socket = this.socket
    this.socket = undefined
    if (socket != null) await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  private get group(): string {
    return this.init.group ?? DEFAULT_MULTICAST_GROUP
  }

  private announce(): void {
    const socket = this.socket
    const material = this.components.identity.material()
    if (socket == null || material == null) return // nothing to sign with yet
    const datagram = signAnnouncement(
      {
        identity: {
          networkId: this.init.networkId,
          nodeId: this.init.nodeId,
          spiffeId: this.components.identity.spiffeId,
          certificateSha256: ''
        },
        endpoints: this.init.endpoints(),
        sentAt: new Date(),
        sequence: ++this.sequence
      },
      material
    )
    const targets = [
      ...(this.init.multicast !== false ? [`${this.group}:${this.init.port ?? DEFAULT_MULTICAST_PORT}`] : []),
      ...(this.init.unicastTargets ?? [])
    ]
    for (const target of targets) {
      const i = target.lastIndexOf(':')
      socket.send(datagram, Number(target.slice(i + 1)), target.slice(0, i), (err) => {
        if (err != null) this.log.debug('announcement not sent', { target, err })
        else this.counts.sent++
      })
    }
  }

  private receive(datagram: Buffer, from: string): void {
    const material = this.components.identity.material()
    if (material == null) return
    const verdict = verifyAnnouncement(datagram, {
      networkId: this.init.networkId,
      caPem: material.caPem,
      selfNodeId: this.init.nodeId,
      nowMs: Date.now(),
      maxAgeMs: this.init.maxAgeMs ?? 30_000
    })
    if (!verdict.ok) {
      this.counts.ignored[verdict.reason]++
      if (verdict.reason !== 'self') this.log.debug('announcement ignored', { from, reason: verdict.reason, detail: verdict.detail })
      return
    }
    this.counts.accepted++
    const endpoints = announcedEndpoints(verdict.announcement)
    if (endpoints.length === 0) return
    this.emit('peer', { nodeId: verdict.announcement.identity!.nodeId, endpoints, from })
  }
}

/** LAN discovery over UDP multicast (see `createMulticastDiscovery`); start/stop are idempotent. */
export interface MulticastDiscovery extends EventEmitter<MulticastDiscoveryEvents>, Startable {
  readonly counters: DiscoveryCounters
  /** The bound UDP port (after start). */
  readonly port: number
  start(): Promise<void>
  stop(): Promise<void>
}

export function createMulticastDiscovery(components: MulticastDiscoveryComponents, init: MulticastDiscoveryInit): MulticastDiscovery {
  return new DefaultMulticastDiscovery(components, init)
}
