import * as grpc from '@grpc/grpc-js'
import { killStream } from './faults.js'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  InvalidInputError,
  HandoffOutcome,
  msToDuration,
  negotiateContractVersion,
  NodeConfig,
  RETRY_AFTER_METADATA_KEY,
  supportedContractVersions,
  type Assignment,
  type Capabilities,
  type ContractVersionRange,
  type NetworkManagerServer,
  type ReportHealthRequest,
  type ReportHealthResponse,
  type SignedSpore
} from '@mycelium/core-interfaces'
import type { RateLimit } from '@mycelium/core-utils'
import { callerIdentity } from '@mycelium/basic-net'
import { enroll, type EnrollmentContext } from './enrollment.js'
import { DistressDesk } from './distress-desk.js'
import { AdmissionLimiter } from './admission.js'

export interface NetworkManagerInit {
  networkId: string
  /** Heartbeat interval given to nodes. @default 1000 */
  heartbeatIntervalMs?: number
  /** Lease length per renewal. @default 3 × heartbeatIntervalMs */
  leaseTtlMs?: number
  /** Time a node has to commit a handoff. @default 10000 */
  handoffDeadlineMs?: number
  /**
   * For this long after the manager starts, every lease it grants or renews
   * lasts this much longer. A manager that just (re)started is met by its
   * whole fleet at once; acks it sends late under that load must not expire
   * the leases of the nodes it just admitted, each of which would then
   * register again — more load, more late acks (a lease-loss cascade). Nomad
   * calls this the failover heartbeat TTL. A node dying in the grace is seen
   * that much later. @default 0 (off)
   */
  failoverGraceMs?: number
  /**
   * Registrations admitted (admission.ts); beyond: RESOURCE_EXHAUSTED with a
   * retry-after naming the node's own slot, and a fleet reconnect window of
   * fleet size / perSecond advertised to every node. @default { burst: 100, perSecond: 50 }
   */
  registrationRate?: RateLimit
  /** Clock faults for skew tests (the manager's clock is otherwise the process clock). */
  clock?: ManagerClockFaults
  /** The spores the network publishes now (given to nodes in distress). @default none */
  spores?: () => SignedSpore[]
}

export interface ManagerClockFaults {
  /** Added to the process clock for everything the manager times and sends (positive: the manager is ahead). @default 0 */
  offsetMs?: number
  /**
   * Behave like a manager from before the relative clock fields: send only
   * absolute times (no handoff_timeout, no lease_remaining), so nodes must
   * estimate the skew. @default false
   */
  absoluteTimesOnly?: boolean
}

/** What the manager knows of one node. */
export interface NodeRecord {
  nodeId: string
  /** Latest capabilities: from RegisterNode, replaced by any heartbeat that carries them. */
  capabilities?: Capabilities
  /** Heartbeats that carried capabilities (each stream's first report, then every change). */
  capabilityReports: number
  /** The contract range the node said it speaks at its last registration. */
  contractVersions?: ContractVersionRange
  contractVersion?: number
  lease?: { leaseId: string; expiresAtMs: number; expired: boolean }
  handoff?: { handoffId: string; deadlineMs: number }
  managed: boolean
  registrations: number
  healthReports: number
  lastHealth?: ReportHealthRequest
  /** When `lastHealth` arrived (manager clock, ms). */
  lastHealthAtMs?: number
  /** When the manager last admitted its registration (process clock, ms). */
  registeredAtMs?: number
  /** The reconnect window this node last heard (ms): acks carry it only when it changed. */
  reconnectWindowMs?: number
}

export interface HandoffFaults {
  /** CommitHandoff answers REFUSED. */
  refuseHandoff: boolean
  /** CommitHandoff never answers, so the node's deadline passes. */
  ignoreHandoff: boolean
}

export interface NetworkManagerEvents {
  registered: [node: NodeRecord]
  managed: [node: NodeRecord]
  'lease:expired': [node: NodeRecord]
  /** A heartbeat carried capabilities that differ from those held. */
  'capabilities:changed': [node: NodeRecord]
  /** A registration answered RESOURCE_EXHAUSTED (the node was told to retry after `retryAfterMs`). */
  'registration:refused': [nodeId: string, retryAfterMs: number]
}

/**
 * The Network Manager's state and rpc handlers: enrolment, registration with
 * contract and capability checks, leases renewed by heartbeats, two-phase
 * handoff, assignments and config versions, and a registration rate limit
 * that answers reconnect storms with retry-after.
 */
export class DevNetworkManager extends EventEmitter<NetworkManagerEvents> {
  readonly nodes = new Map<string, NodeRecord>()
  readonly handoffFaults: HandoffFaults = { refuseHandoff: false, ignoreHandoff: false }
  readonly heartbeatIntervalMs: number
  readonly leaseTtlMs: number
  private readonly handoffDeadlineMs: number
  /** Registration admission under reconnect storms. */
  readonly admission: AdmissionLimiter
  private config: NodeConfig
  private readonly assignments = new Map<string, { generation: number; list: Assignment[] }>()
  private readonly healthStreams = new Set<grpc.ServerDuplexStream<ReportHealthRequest, ReportHealthResponse>>()
  private sweeper?: NodeJS.Timeout
  /** Process clock at start(): the failover grace runs from here. */
  private startedAtMs = Date.now()
  /** Emergency contact (ReportDistress); spores are given once the network names their source. */
  readonly distressDesk: DistressDesk
  /** Calls to CommitHandoff left unanswered by the ignore fault (answered on stop). */
  private readonly ignored = new Set<() => void>()

  constructor(
    private readonly enrollment: EnrollmentContext,
    private readonly init: NetworkManagerInit
  ) {
    super()
    this.heartbeatIntervalMs = init.heartbeatIntervalMs ?? 1000
    this.leaseTtlMs = init.leaseTtlMs ?? 3 * this.heartbeatIntervalMs
    this.handoffDeadlineMs = init.handoffDeadlineMs ?? 10_000
    this.admission = new AdmissionLimiter({ burst: 100, perSecond: 50, ...init.registrationRate }, Date.now())
    this.config = NodeConfig.fromPartial({ version: enrollment.state.configVersion, networkId: init.networkId })
    this.distressDesk = new DistressDesk({ enrollment, spores: () => init.spores?.() ?? [] }, init.networkId)
  }

  /** The lease a grant or renewal gives now: the configured TTL, plus the failover grace while it lasts. */
  leaseTtlNow(): number {
    const grace = this.init.failoverGraceMs ?? 0
    return this.leaseTtlMs + (grace > 0 && Date.now() - this.startedAtMs < grace ? grace : 0)
  }

  start(): void {
    this.startedAtMs = Date.now()
    this.sweeper ??= setInterval(() => this.sweepLeases(), 100)
    this.sweeper.unref()
  }

  stop(): void {
    clearInterval(this.sweeper)
    this.sweeper = undefined
    for (const answer of this.ignored) answer()
    this.ignored.clear()
  }

  /** The config nodes are told about; its version must increase. */
  get desiredConfig(): NodeConfig {
    return this.config
  }

  async setConfig(config: NodeConfig): Promise<void> {
    if (config.version <= this.config.version)
      throw new InvalidInputError(`config version ${config.version} is not above ${this.config.version}`, 'push-config')
    this.config = config
    this.enrollment.state.configVersion = config.version
    await this.enrollment.save()
  }

  /** The node's current assignments (empty when none were set). */
  assignmentsOf(nodeId: string): Assignment[] {
    return [...(this.assignments.get(nodeId)?.list ?? [])]
  }

  setAssignments(nodeId: string, list: Assignment[]): void {
    const current = this.assignments.get(nodeId)
    this.assignments.set(nodeId, { generation: (current?.generation ?? 0) + 1, list })
  }

  /** Ends every health stream (as a crash of the link would). */
  killHealthStreams(): void {
    for (const s of this.healthStreams) killStream(s)
    this.healthStreams.clear()
  }

  private node(nodeId: string): NodeRecord {
    let node = this.nodes.get(nodeId)
    if (node == null) {
      node = { nodeId, managed: false, registrations: 0, healthReports: 0, capabilityReports: 0 }
      this.nodes.set(nodeId, node)
    }
    return node
  }

  private caller(call: Parameters<typeof callerIdentity>[0]): NodeRecord {
    return this.node(callerIdentity(call, { networkId: this.init.networkId, role: 'node' }).name)
  }

  /** The manager's clock (the process clock plus the configured fault offset). */
  now(): number {
    return Date.now() + (this.init.clock?.offsetMs ?? 0)
  }

  private sweepLeases(): void {
    const now = this.now()
    for (const node of this.nodes.values()) {
      if (node.lease != null && !node.lease.expired && node.lease.expiresAtMs < now) {
        node.lease.expired = true
        node.managed = false
        this.emit('lease:expired', node)
      }
    }
  }

  private validLease(node: NodeRecord, leaseId: string): string | undefined {
    if (node.lease == null || node.lease.leaseId !== leaseId) return `unknown lease "${leaseId}"`
    if (node.lease.expired || node.lease.expiresAtMs < this.now()) return `lease "${leaseId}" expired`
    return undefined
  }

  handlers(): NetworkManagerServer {
    return {
      enroll: (call, cb) => {
        enroll(this.enrollment, call.request).then(
          (res) => cb(null, res),
          (err: grpc.ServiceError) => cb(err.code != null ? err : { code: grpc.status.INTERNAL, details: String(err) })
        )
      },
      renewCertificate: (call, cb) => {
        const node = this.caller(call)
        void (async () => {
          const { certificatePem, spiffeId } = await this.enrollment.ca.issueFromCsr(call.request.csrDer, {
            notAfter: new Date(Date.now() + this.enrollment.certificateTtlMs)
          })
          if (spiffeId.role !== 'node' || spiffeId.name !== node.nodeId) {
            cb({ code: grpc.status.PERMISSION_DENIED, details: `CSR names ${spiffeId.name}, caller is ${node.nodeId}` })
            return
          }
          cb(null, { certificateChainPem: [certificatePem], notAfter: new Date(Date.now() + this.enrollment.certificateTtlMs) })
        })().catch((err: Error) => cb({ code: grpc.status.INVALID_ARGUMENT, details: err.message }))
      },
      registerNode: (call, cb) => {
        const node = this.caller(call)
        const req = call.request
        if (req.identity?.nodeId !== node.nodeId) {
          cb({
            code: grpc.status.PERMISSION_DENIED,
            details: `request names node "${req.identity?.nodeId}", certificate is "${node.nodeId}"`
          })
          return
        }
        // Process clock, not the fault-skewed one: admission paces real time.
        const admission = this.admission.admit(node.nodeId, Date.now())
        if (!admission.admitted) {
          const metadata = new grpc.Metadata()
          // The node's own slot in the queue: refused nodes are spread by the manager, not left to return together.
          metadata.set(RETRY_AFTER_METADATA_KEY, String(admission.retryAfterMs))
          this.emit('registration:refused', node.nodeId, admission.retryAfterMs)
          cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'registration rate exceeded; retry later', metadata })
          return
        }
        const version =
          req.contractVersions == null ? undefined : negotiateContractVersion(supportedContractVersions(), req.contractVersions)
        if (version == null) {
          cb({
            code: grpc.status.FAILED_PRECONDITION,
            details: `unsupported contract versions ${req.contractVersions?.min ?? '?'}–${req.contractVersions?.max ?? '?'}; this manager speaks 1–1`
          })
          return
        }
        if (req.capabilities == null) {
          cb({ code: grpc.status.INVALID_ARGUMENT, details: 'RegisterNodeRequest.capabilities is required' })
          return
        }
        const now = this.now()
        node.capabilities = req.capabilities
        node.contractVersions = req.contractVersions
        node.contractVersion = version
        node.registrations++
        node.registeredAtMs = Date.now()
        node.managed = false
        const ttlMs = this.leaseTtlNow()
        node.lease = { leaseId: randomUUID(), expiresAtMs: now + ttlMs, expired: false }
        node.handoff = { handoffId: randomUUID(), deadlineMs: now + this.handoffDeadlineMs }
        const assignments = this.assignments.get(node.nodeId)
        node.reconnectWindowMs = this.admission.reconnectWindowMs(this.nodes.size)
        this.emit('registered', node)
        cb(null, {
          lease: { leaseId: node.lease.leaseId, expiresAt: new Date(node.lease.expiresAtMs), ttl: msToDuration(ttlMs) },
          ...(this.init.clock?.absoluteTimesOnly
            ? {}
            : { handoffTimeout: msToDuration(node.handoff.deadlineMs - now), leaseRemaining: msToDuration(node.lease.expiresAtMs - now) }),
          heartbeatInterval: msToDuration(this.heartbeatIntervalMs),
          assignments: assignments?.list ?? [],
          assignmentsGeneration: assignments?.generation ?? 0,
          contractVersion: version,
          handoffId: node.handoff.handoffId,
          handoffDeadline: new Date(node.handoff.deadlineMs),
          ...(node.reconnectWindowMs > 0 ? { reconnectWindow: msToDuration(node.reconnectWindowMs) } : {})
        })
      },
      commitHandoff: (call, cb) => {
        const node = this.caller(call)
        const req = call.request
        if (node.handoff == null || node.handoff.handoffId !== req.handoffId || node.handoff.deadlineMs < this.now()) {
          cb({ code: grpc.status.FAILED_PRECONDITION, details: `unknown or expired handoff "${req.handoffId}"; register again` })
          return
        }
        const leaseProblem = this.validLease(node, req.leaseId)
        if (leaseProblem != null) {
          cb({ code: grpc.status.FAILED_PRECONDITION, details: leaseProblem })
          return
        }
        if (this.handoffFaults.ignoreHandoff) {
          const answer = (): void => cb({ code: grpc.status.UNAVAILABLE, details: 'manager stopping' })
          this.ignored.add(answer)
          call.on('cancelled', () => this.ignored.delete(answer))
          return
        }
        if (this.handoffFaults.refuseHandoff) {
          cb(null, { outcome: HandoffOutcome.REFUSED, reason: 'handoff refused by fault control', retryAfter: msToDuration(1000) })
          return
        }
        node.handoff = undefined
        node.managed = true
        this.emit('managed', node)
        cb(null, { outcome: HandoffOutcome.CONFIRMED, reason: '' })
      },
      requestAssignments: (call, cb) => {
        const node = this.caller(call)
        const problem = this.validLease(node, call.request.leaseId)
        if (problem != null) {
          cb({ code: grpc.status.FAILED_PRECONDITION, details: problem })
          return
        }
        const current = this.assignments.get(node.nodeId) ?? { generation: 0, list: [] }
        const changed = current.generation > call.request.knownGeneration
        cb(null, { assignments: changed ? current.list : [], generation: current.generation, changed })
      },
      requestConfigUpdate: (call, cb) => {
        this.caller(call)
        cb(null, this.config.version > call.request.currentVersion ? { config: this.config } : {})
      },
      reportDistress: this.distressDesk.handler(),
      reportHealth: (call) => {
        const node = this.caller(call)
        this.healthStreams.add(call)
        call.on('data', (req: ReportHealthRequest) => {
          const problem = this.validLease(node, req.leaseId)
          if (problem != null) {
            call.write({
              sequence: req.sequence,
              leaseRevoked: true,
              reason: `${problem}; register again`,
              latestConfigVersion: this.config.version,
              assignmentsGeneration: 0
            })
            call.end()
            return
          }
          const ttlMs = this.leaseTtlNow()
          node.lease!.expiresAtMs = this.now() + ttlMs
          const windowMs = this.admission.reconnectWindowMs(this.nodes.size)
          const windowChanged = windowMs !== (node.reconnectWindowMs ?? 0)
          node.reconnectWindowMs = windowMs
          node.healthReports++
          node.lastHealth = req
          node.lastHealthAtMs = this.now()
          if (req.capabilities != null) {
            node.capabilityReports++
            const changed = JSON.stringify(req.capabilities) !== JSON.stringify(node.capabilities)
            node.capabilities = req.capabilities
            if (changed) this.emit('capabilities:changed', node)
          }
          call.write({
            sequence: req.sequence,
            leaseExpiresAt: new Date(node.lease!.expiresAtMs),
            ...(this.init.clock?.absoluteTimesOnly ? {} : { leaseRemaining: msToDuration(ttlMs) }),
            leaseRevoked: false,
            reason: '',
            latestConfigVersion: this.config.version,
            assignmentsGeneration: this.assignments.get(node.nodeId)?.generation ?? 0,
            ...(windowChanged ? { reconnectWindow: msToDuration(windowMs) } : {})
          })
        })
        const done = (): void => {
          this.healthStreams.delete(call)
        }
        call.on('end', () => {
          done()
          call.end()
        })
        call.on('error', done)
        call.on('cancelled', done)
      }
    }
  }
}
