import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import * as grpc from '@grpc/grpc-js'
import {
  DistressProblem,
  durationToMs,
  IdentityState,
  NetworkManagerClient,
  PeerAssistClient,
  Phase,
  strictClient,
  type DistressAnswer,
  type DistressEnvelope,
  type Endpoint,
  type Logger,
  type NodeConfig,
  type Startable
} from '@mycelium/core-interfaces'
import { Backoff, callUnary, credentialsFor, type BackoffOptions, type EndpointCredentials } from '@mycelium/core-utils'
import { signDistress, type IdentityStore, type PeerEntry, type SignedDistressRelay } from '@mycelium/basic-net'
import { DEFAULT_RECONNECT, type BootstrapAgent } from '@mycelium/bootstrap-agent'
import { distressNeeded, type DistressFacts, type DistressNeed } from './distress-need.js'

/**
 * Emergency contact, node side. Two roles in one file:
 * - the beacon: a node that cannot reach any manager for longer than a
 *   threshold, or whose core failure persists (the pure decision is
 *   distress-need.ts), signs a call for help and sends it to its peers;
 *   the first answer relayed back is applied (fresh spores ingested and
 *   verified, a renewed certificate installed, operator commands run
 *   through the command executor, which checks their signatures);
 * - the relay: a MANAGED node forwards a peer's signed call to its Network
 *   Manager and returns the answer; a node that is not MANAGED forwards it
 *   to its own peers while hops remain.
 */

/** The last call for help, for status and tests. */
export interface DistressRound {
  distressId: string
  problem: DistressProblem
  at: Date
  /** The peer that relayed the answer ('' when no peer delivered). */
  via: string
  delivered: boolean
  reason: string
  /** What the answer brought that the node took: spore names, "certificate", command ids. */
  applied: string[]
  /** The peers offered the call, in the order asked (node id, or address). */
  peersTried: string[]
}

export interface DistressBeaconComponents {
  logger: Logger
  identity: IdentityStore
  agent: BootstrapAgent
  /** Known peers (the peer monitor's table). */
  peers: () => PeerEntry[]
  /** mTLS to peers (node identities). */
  peerCredentials: grpc.ChannelCredentials
  channelOptions: grpc.ChannelOptions
  /** Facts other than the agent's (K3s, config reverts, failed components). */
  facts: () => Pick<DistressFacts, 'k3s' | 'configRevertsInRow' | 'failedComponent'>
}

export interface DistressBeaconInit {
  networkId: string
  nodeId: string
  /** @default DEFAULT_DISTRESS.unreachableMs */
  unreachableMs?: number
  /** @default DEFAULT_DISTRESS.configRevertLoop */
  configRevertLoop?: number
  /** How often the need is checked. @default DEFAULT_DISTRESS.checkIntervalMs */
  checkIntervalMs?: number
  /** Between rounds while the need persists: capped, full jitter. @default DEFAULT_DISTRESS.backoff */
  backoff?: BackoffOptions
  /** Relays a call may take beyond the first peer. @default DEFAULT_DISTRESS.hops */
  hops?: number
  /** Per peer call. @default DEFAULT_DISTRESS.callTimeoutMs */
  callTimeoutMs?: number
  /** Jitter source. @default Math.random */
  random?: () => number
}

export const DEFAULT_DISTRESS = {
  /** @default 60000: three default heartbeat-loss cycles, so a brief manager restart raises nothing. */
  unreachableMs: 60_000,
  /** @default 3 */
  configRevertLoop: 3,
  /** @default 5000 */
  checkIntervalMs: 5000,
  /** @default 2 s doubling to 5 min */
  backoff: { initialMs: 2000, maxMs: 300_000, multiplier: 2 } satisfies Required<BackoffOptions>,
  /** @default 2 */
  hops: 2,
  /** @default 10000 */
  callTimeoutMs: 10_000
} as const

const StrictPeerAssistClient = strictClient(PeerAssistClient)
const StrictNetworkManagerClient = strictClient(NetworkManagerClient)

/**
 * The beacon (see the file comment). Startable: a loop that owns an
 * AbortController; every round is bounded (per-peer timeout) and rounds are
 * spaced by a capped, jittered backoff while the need persists.
 */
export class DistressBeacon implements Startable {
  private controller?: AbortController
  private loop?: Promise<void>
  private lastManagedMs = Date.now()
  private readonly log: Logger
  /** The last round (status). */
  last?: DistressRound
  /** The last round a peer delivered and answered (status: the help received). */
  lastAnswered?: DistressRound
  /** Rounds sent since start (metrics). */
  rounds = 0
  private readonly listeners = new Set<(round: DistressRound) => void>()

  constructor(
    private readonly components: DistressBeaconComponents,
    private readonly init: DistressBeaconInit
  ) {
    this.log = components.logger.forComponent('node-core:distress')
  }

  isStarted(): boolean {
    return this.controller != null
  }

  /** Called after every round. Returns an unsubscribe. */
  onRound(listener: (round: DistressRound) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  start(): void {
    if (this.controller != null) return
    const controller = new AbortController()
    this.controller = controller
    this.lastManagedMs = Date.now()
    this.loop = this.run(controller.signal).catch((err: unknown) => {
      if (!controller.signal.aborted) this.log.error('distress loop failed', { err })
    })
  }

  async stop(): Promise<void> {
    const c = this.controller
    if (c == null) return
    this.controller = undefined
    c.abort()
    await this.loop
  }

  /** The decision now (also for status). */
  need(): DistressNeed | undefined {
    const { agent, identity } = this.components
    if (agent.phase === Phase.MANAGED) this.lastManagedMs = Date.now()
    const spores = agent.sporeClient
    const report = identity.report()
    return distressNeeded(
      {
        nowMs: Date.now(),
        phase: agent.phase,
        lastManagedMs: this.lastManagedMs,
        identity: { state: report.state, reason: report.reason },
        ...(spores != null ? { spores: { held: spores.status().sporeCount, live: spores.list().length } } : {}),
        ...this.components.facts()
      },
      {
        unreachableMs: this.init.unreachableMs ?? DEFAULT_DISTRESS.unreachableMs,
        configRevertLoop: this.init.configRevertLoop ?? DEFAULT_DISTRESS.configRevertLoop
      }
    )
  }

  private async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.init.backoff ?? DEFAULT_DISTRESS.backoff, this.init.random ?? Math.random)
    const checkMs = this.init.checkIntervalMs ?? DEFAULT_DISTRESS.checkIntervalMs
    while (!signal.aborted) {
      const need = this.need()
      if (need == null) {
        backoff.reset()
        await sleep(checkMs, undefined, { signal }).catch(() => undefined)
        continue
      }
      const round = await this.send(need, signal)
      if (signal.aborted) return
      // Answered or not, the next round waits: the help needs time to work (or peers to come up).
      await sleep(Math.max(checkMs, backoff.next()), undefined, { signal }).catch(() => undefined)
      if (round.delivered) backoff.reset()
    }
  }

  /** One round: a signed call to each known peer (those that reach a manager first) until one delivers. */
  async send(need: DistressNeed, signal: AbortSignal): Promise<DistressRound> {
    const { identity, agent } = this.components
    const material = identity.material()
    const distressId = randomUUID()
    const round: DistressRound = {
      distressId,
      problem: need.problem,
      at: new Date(),
      via: '',
      delivered: false,
      reason: '',
      applied: [],
      peersTried: []
    }
    if (material == null) {
      round.reason = 'no identity to sign with (not enrolled)'
      return this.finish(round)
    }
    const csr = need.renewal ? await identity.createCsr().catch(() => undefined) : undefined
    const envelope = signDistress(
      {
        distressId,
        node: {
          networkId: this.init.networkId,
          nodeId: this.init.nodeId,
          spiffeId: identity.spiffeId,
          certificateSha256: identity.report().certificateSha256 ?? ''
        },
        phase: agent.phase,
        problem: need.problem,
        evidence: need.evidence,
        help: {
          freshSpores: true,
          knownSequences: agent.sporeClient?.knownSequences() ?? {},
          renewalCsrDer: csr ?? Buffer.alloc(0),
          // Always asked: an operator may have prepared a command for a node it cannot reach.
          emergencyCommand: true
        },
        raisedAt: new Date()
      },
      material,
      this.init.hops ?? DEFAULT_DISTRESS.hops
    )
    const peers = [...this.components.peers()]
      .filter((p) => p.state !== 'down' || p.managersReachable === true)
      .sort((a, b) => Number(b.managersReachable === true) - Number(a.managersReachable === true))
    if (peers.length === 0) round.reason = 'no known peer'
    this.log.warn('calling peers for help', {
      distressId,
      problem: DistressProblem[need.problem],
      evidence: need.evidence,
      peers: peers.length,
      renewal: csr != null
    })
    const reasons: string[] = []
    for (const peer of peers) {
      if (signal.aborted) break
      round.peersTried.push(peer.nodeId ?? peer.address)
      try {
        const res = await relayTo(
          { address: peer.address, expectedIdentity: '', zone: '', priority: 0 },
          envelope,
          this.components.peerCredentials,
          this.components.channelOptions,
          signal,
          this.init.callTimeoutMs ?? DEFAULT_DISTRESS.callTimeoutMs
        )
        if (res.delivered && res.answer != null) {
          round.delivered = true
          round.via = peer.nodeId ?? peer.address
          round.reason = res.answer.reason
          round.applied = await this.apply(res.answer)
          break
        }
        reasons.push(`${peer.nodeId ?? peer.address}: ${res.reason}`)
      } catch (err) {
        reasons.push(`${peer.nodeId ?? peer.address}: ${describe(err)}`)
      }
    }
    if (!round.delivered && reasons.length > 0) round.reason = reasons.join('; ')
    return this.finish(round)
  }

  /** Takes the help: spores (verified by the spore client), the certificate (checked by the identity store), commands (checked by the executor). */
  private async apply(answer: DistressAnswer): Promise<string[]> {
    const { agent, identity } = this.components
    const applied: string[] = []
    const spores = agent.sporeClient
    if (spores != null && answer.spores.length > 0) {
      const { accepted, rejected } = spores.ingest(answer.spores, 'distress')
      applied.push(...accepted)
      for (const r of rejected) this.log.warn('spore from a distress answer refused', { err: r })
    }
    if (answer.certificateChainPem.length > 0) {
      try {
        const report = await identity.install(answer.certificateChainPem.join('\n'))
        applied.push('certificate')
        this.log.info('certificate renewed through a peer', {
          notAfter: report.notAfter?.toISOString(),
          state: IdentityState[report.state]
        })
      } catch (err) {
        this.log.warn('certificate from a distress answer refused', { err })
      }
    }
    for (const command of answer.commands) {
      // The executor validates the operator signatures and journals it (never run twice).
      await agent.executor?.submit(command, 'remote')
      applied.push(command.commandId)
    }
    // New spores or a certificate: a node waiting in FALLBACK tries now, not after its backoff.
    if (applied.length > 0 && (agent.phase === Phase.FALLBACK || agent.phase === Phase.RECOVERY)) agent.dispatch({ type: 'retry-timer' })
    return applied
  }

  private finish(round: DistressRound): DistressRound {
    this.rounds++
    this.last = round
    if (round.delivered) this.lastAnswered = round
    const level = round.delivered ? 'info' : 'warn'
    this.log[level]('distress round', {
      distressId: round.distressId,
      delivered: round.delivered,
      via: round.via,
      reason: round.reason,
      applied: round.applied
    })
    for (const l of this.listeners) l(round)
    return round
  }
}

/** One RelayDistress call to a peer. */
async function relayTo(
  peer: Endpoint,
  envelope: DistressEnvelope,
  credentials: grpc.ChannelCredentials,
  channelOptions: grpc.ChannelOptions,
  signal: AbortSignal,
  timeoutMs: number
): Promise<{ delivered: boolean; reason: string; answer?: DistressAnswer }> {
  const client = new StrictPeerAssistClient(peer.address, credentials, channelOptions)
  try {
    const res = await callUnary(client.relayDistress.bind(client), { envelope }, signal, timeoutMs)
    return { delivered: res.delivered, reason: res.reason, ...(res.answer != null ? { answer: res.answer } : {}) }
  } finally {
    client.close()
  }
}

const describe = (err: unknown): string => {
  const e = err as Partial<grpc.ServiceError> & Error
  return typeof e.code === 'number' ? `${grpc.status[e.code]}: ${e.details ?? e.message}` : e.message
}

export interface DistressRelayDeps {
  logger: Logger
  agent: BootstrapAgent
  /** mTLS to the Network Manager (manager identity per endpoint). */
  managerCredentials: EndpointCredentials
  /** mTLS to peers (node identities). */
  peerCredentials: grpc.ChannelCredentials
  channelOptions: grpc.ChannelOptions
  /** Peers that answer pings (for a further hop). */
  alivePeers: () => PeerEntry[]
  /** @default DEFAULT_DISTRESS.callTimeoutMs */
  callTimeoutMs?: number
}

/**
 * PeerAssist's `onSignedDistress` for node-core: MANAGED → the Network
 * Manager this node holds its lease with (ReportDistress), answer returned;
 * otherwise the next peer (never back to the sender or the node in
 * distress) while hops remain (the server already decremented them).
 */
export function distressRelay(
  d: DistressRelayDeps
): (relay: SignedDistressRelay) => Promise<{ delivered: boolean; reason: string; answer?: DistressAnswer }> {
  const log = d.logger.forComponent('node-core:distress')
  const timeoutMs = d.callTimeoutMs ?? DEFAULT_DISTRESS.callTimeoutMs
  return async ({ envelope, verified, from }) => {
    const signal = AbortSignal.timeout(timeoutMs * 2)
    const endpoint = d.agent.managerEndpoint
    if (d.agent.phase === Phase.MANAGED && endpoint != null) {
      const client = new StrictNetworkManagerClient(endpoint.address, credentialsFor(d.managerCredentials, endpoint), d.channelOptions)
      try {
        const res = await callUnary(client.reportDistress.bind(client), { envelope }, signal, timeoutMs)
        log.info('distress forwarded to the Network Manager', { node: verified.nodeId, from, answer: res.answer?.reason })
        return { delivered: true, reason: res.answer?.reason ?? '', ...(res.answer != null ? { answer: res.answer } : {}) }
      } catch (err) {
        return { delivered: false, reason: `the Network Manager refused or failed: ${describe(err)}` }
      } finally {
        client.close()
      }
    }
    if (envelope.hopsRemaining === 0) return { delivered: false, reason: 'this node has no route to a manager (hop limit reached)' }
    const next = d.alivePeers().filter((p) => p.nodeId !== from && p.nodeId !== verified.nodeId && p.managersReachable === true)
    for (const peer of next) {
      try {
        const res = await relayTo(
          { address: peer.address, expectedIdentity: '', zone: '', priority: 0 },
          envelope,
          d.peerCredentials,
          d.channelOptions,
          signal,
          timeoutMs
        )
        if (res.delivered) return res
      } catch (err) {
        log.debug('further relay failed', { peer: peer.address, err })
      }
    }
    return { delivered: false, reason: 'this node has no route to a manager' }
  }
}

/**
 * The beacon's init from the config in force: a node calls for help after
 * it failed to reconnect for two full backoff ceilings (reconnect.max) —
 * by then it has re-resolved its spores and asked its peers for spores at
 * least twice — and never sooner than 2 s. No config key of its own.
 */
export function distressInitFor(c: NodeConfig, random: () => number): DistressBeaconInit {
  const reconnectMaxMs = durationToMs(c.reconnect?.max, DEFAULT_RECONNECT.maxMs)
  return { networkId: c.networkId, nodeId: c.nodeId, unreachableMs: Math.max(2000, 2 * reconnectMaxMs), random }
}
