import * as grpc from '@grpc/grpc-js'
import {
  durationToMs,
  HandoffOutcome,
  NetworkManagerClient,
  retryAfterFromStatus,
  silentLogger,
  type CommitHandoffResponse,
  type Endpoint,
  type Logger,
  type RegisterNodeRequest,
  type RegisterNodeResponse,
  type ReportHealthRequest,
  type ReportHealthResponse,
  type RenewCertificateResponse,
  type RequestConfigUpdateResponse,
  type RequestAssignmentsResponse,
  strictClient,
  UnavailableError,
  isUnavailableError
} from '@mycelium/core-interfaces'
import { callUnary, credentialsFor, type EndpointCredentials } from '@mycelium/core-utils'
import { dialFirst } from '@mycelium/basic-net'
import { DEFAULT_MISSED_ACKS_BEFORE_FALLBACK } from './defaults.js'
import { ManagerClock } from './manager-clock.js'

/** The manager's answers are decoded strictly (canonical varints, timestamps in range). */
const StrictNetworkManagerClient = strictClient(NetworkManagerClient)

/**
 * A refusal or failure of the manager, with the wait it asked for: the one
 * retry-after shape, UnavailableError (`message` says why, `retryAfterMs`
 * is the manager's `retry-after-ms`).
 */
export type LinkFailure = UnavailableError

/** Any failure of a call to the manager as a LinkFailure; a gRPC status reads `CODE: details`. */
export function describeGrpcError(err: unknown): LinkFailure {
  if (isUnavailableError(err)) return err
  const e = err as Partial<grpc.ServiceError> & Error
  if (typeof e.code !== 'number') return new UnavailableError(e.message, undefined, { cause: err })
  return new UnavailableError(`${grpc.status[e.code]}: ${e.details ?? e.message}`, retryAfterFromStatus(e), { cause: err })
}

export interface HeartbeatHandlers {
  /** Fields of the next report (lease id and sequence are filled in). */
  report: () => Omit<ReportHealthRequest, 'leaseId' | 'sequence' | 'sentAt'>
  onAck: (ack: ReportHealthResponse, rttMs: number) => void
  onLost: (failure: LinkFailure) => void
  /** Heartbeats left unanswered in a row before the link is declared down, read at every beat. @default 3 */
  missedAcks?: () => number
}

export interface ManagerLinkInit {
  /** Per endpoint (basic-net `endpointCredentials`) so `expected_identity` is enforced. */
  credentials: EndpointCredentials
  channelOptions?: grpc.ChannelOptions
  dialTimeoutMs: number
  logger?: Logger
  /** Where lease deadlines live (monotonic). @default a new ManagerClock */
  clock?: ManagerClock
}

/**
 * The node's link to one Network Manager endpoint: dial (happy eyeballs),
 * register, commit the handoff, then heartbeat on the lease's interval with
 * a count of unanswered beats. Loss is reported once, with a reason:
 * stream error or end, lease revoked, lease expired, or
 * `missedAcks` heartbeats in a row left unanswered.
 * Every time here is monotonic (see ManagerClock): a step of the node's
 * wall clock neither expires the lease nor looks like missing acks.
 */
export class ManagerLink {
  private client?: NetworkManagerClient
  private stream?: grpc.ClientDuplexStream<ReportHealthRequest, ReportHealthResponse>
  private timers: NodeJS.Timeout[] = []
  private lost = false
  endpoint?: Endpoint
  /** Wall-clock time of the last ack (for status). */
  lastAckMs?: number
  lastRttMs?: number
  /** The lease deadline on `clock` (monotonic). */
  leaseDeadline?: number
  readonly clock: ManagerClock
  private readonly log: Logger

  constructor(private readonly init: ManagerLinkInit) {
    this.log = (init.logger ?? silentLogger()).forComponent('bootstrap-agent:link')
    this.clock = init.clock ?? new ManagerClock()
  }

  /** The lease expiry on the node's wall clock (for status), while a lease is held. */
  leaseExpiresAt(): Date | undefined {
    return this.leaseDeadline == null ? undefined : this.clock.toWall(this.leaseDeadline)
  }

  async connect(endpoints: Endpoint[], signal: AbortSignal): Promise<Endpoint> {
    const dialed = await dialFirst(
      endpoints,
      (e) => new StrictNetworkManagerClient(e.address, credentialsFor(this.init.credentials, e), this.init.channelOptions),
      {
        timeoutMs: this.init.dialTimeoutMs,
        signal
      }
    )
    this.client = dialed.client
    this.endpoint = dialed.endpoint
    return dialed.endpoint
  }

  /** Every unary call of the link takes the agent's signal: aborting it cancels the call at once (AbortError). */
  async register(req: RegisterNodeRequest, signal: AbortSignal): Promise<RegisterNodeResponse> {
    const client = this.connected()
    return callUnary(client.registerNode.bind(client), req, signal, this.init.dialTimeoutMs)
  }

  /** Second phase of the handoff; resolves `timeout` when no answer comes before `deadlineMs`. */
  async commit(
    handoffId: string,
    leaseId: string,
    configVersion: number,
    deadlineMs: number,
    signal: AbortSignal
  ): Promise<CommitHandoffResponse | 'timeout'> {
    const client = this.connected()
    try {
      return await callUnary(client.commitHandoff.bind(client), { handoffId, leaseId, configVersion }, signal, deadlineMs)
    } catch (err) {
      if ((err as Partial<grpc.ServiceError>).code === grpc.status.DEADLINE_EXCEEDED) return 'timeout'
      throw err
    }
  }

  async renewCertificate(csrDer: Buffer, signal: AbortSignal): Promise<RenewCertificateResponse> {
    const client = this.connected()
    return callUnary(client.renewCertificate.bind(client), { csrDer }, signal, this.init.dialTimeoutMs)
  }

  async requestConfig(currentVersion: number, signal: AbortSignal): Promise<RequestConfigUpdateResponse> {
    const client = this.connected()
    return callUnary(client.requestConfigUpdate.bind(client), { currentVersion }, signal, this.init.dialTimeoutMs)
  }

  async requestAssignments(leaseId: string, knownGeneration: number, signal: AbortSignal): Promise<RequestAssignmentsResponse> {
    const client = this.connected()
    return callUnary(client.requestAssignments.bind(client), { leaseId, knownGeneration }, signal, this.init.dialTimeoutMs)
  }

  /** Starts heartbeats on the lease (`leaseDeadline` on `clock`); `onLost` fires at most once. */
  startHeartbeats(leaseId: string, intervalMs: number, leaseDeadline: number, handlers: HeartbeatHandlers): void {
    this.lost = false
    this.leaseDeadline = leaseDeadline
    const clock = this.clock
    const sentAt = new Map<number, number>()
    let sequence = 0
    let lastAcked = 0
    const lose = (failure: LinkFailure): void => {
      if (this.lost) return
      this.lost = true
      this.log.warn('manager link lost', { endpoint: this.endpoint?.address, reason: failure.message })
      this.stopHeartbeats()
      handlers.onLost(failure)
    }
    const stream = this.client!.reportHealth()
    this.stream = stream
    stream.on('data', (ack: ReportHealthResponse) => {
      const now = clock.now()
      const rtt = now - (sentAt.get(ack.sequence) ?? now)
      sentAt.delete(ack.sequence)
      if (ack.leaseRevoked) {
        lose(new UnavailableError(`lease revoked: ${ack.reason}`, ack.retryAfter != null ? durationToMs(ack.retryAfter, 0) : undefined))
        return
      }
      lastAcked = Math.max(lastAcked, ack.sequence)
      this.lastAckMs = Date.now()
      this.lastRttMs = rtt
      const deadline = clock.deadline({
        absoluteMs: ack.leaseExpiresAt?.getTime(),
        relativeMs: ack.leaseRemaining != null ? durationToMs(ack.leaseRemaining, 0) : undefined
      })
      if (deadline != null) this.leaseDeadline = deadline
      handlers.onAck(ack, rtt)
    })
    stream.on('error', (err) => {
      const failure = describeGrpcError(err)
      lose(new UnavailableError(`heartbeat stream failed: ${failure.message}`, failure.retryAfterMs, { cause: err }))
    })
    stream.on('end', () => lose(new UnavailableError('the manager ended the heartbeat stream')))
    const beat = (): void => {
      if (this.lost) return
      // handoff.missedAcksBeforeFallback: that many beats outstanding when the next is due means down.
      const missed = sequence - lastAcked
      const allowed = Math.max(1, handlers.missedAcks?.() ?? DEFAULT_MISSED_ACKS_BEFORE_FALLBACK)
      if (missed >= allowed) {
        lose(new UnavailableError(`${missed} heartbeats unanswered in a row (missedAcksBeforeFallback ${allowed})`))
        return
      }
      const seq = ++sequence
      sentAt.set(seq, clock.now())
      if (sentAt.size > 100) sentAt.delete(sentAt.keys().next().value as number)
      stream.write({ ...handlers.report(), leaseId, sequence: seq, sentAt: new Date() })
    }
    beat()
    const beats = setInterval(beat, intervalMs)
    const watchdog = setInterval(
      () => {
        if (this.leaseDeadline != null && clock.now() > this.leaseDeadline) lose(new UnavailableError('lease expired without renewal'))
      },
      Math.max(20, Math.floor(intervalMs / 4))
    )
    beats.unref()
    watchdog.unref()
    this.timers = [beats, watchdog]
  }

  stopHeartbeats(): void {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    this.stream?.cancel()
    this.stream = undefined
  }

  close(): void {
    this.lost = true
    this.stopHeartbeats()
    this.client?.close()
    this.client = undefined
  }

  private connected(): NetworkManagerClient {
    if (this.client == null) throw new UnavailableError('manager link: not connected (connect() first, or the link was closed)')
    return this.client
  }
}

export const isHandoffConfirmed = (r: CommitHandoffResponse): boolean => r.outcome === HandoffOutcome.CONFIRMED
