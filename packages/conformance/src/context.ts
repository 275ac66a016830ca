import * as grpc from '@grpc/grpc-js'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CommandChannelClient,
  durationToMs,
  NetworkManagerClient,
  Phase,
  HealthState,
  HandoffOutcome,
  NodeIdentity,
  Capabilities,
  ReportHealthRequest,
  retryAfterFromStatus,
  SERVICE_NAMES,
  SporeServiceClient,
  supportedContractVersions,
  type Command,
  type CommitHandoffResponse,
  type OpenRequest,
  type OpenResponse,
  type RegisterNodeRequest,
  type RegisterNodeResponse,
  type ReportHealthResponse,
  type TrustBundle
} from '@mycelium/core-interfaces'
import type { UnaryMethod } from '@mycelium/core-utils'
import { clientCredentials, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import { CheckFailedError, CheckSkippedError } from './errors.js'
import type { ConformanceInit } from './types.js'

/** What every check is handed: the node identity, clients for each target, the run's limits. */
export interface CheckContext {
  init: ConformanceInit
  networkId: string
  nodeId: string
  identity: IdentityStore
  trustBundle?: TrustBundle
  signal: AbortSignal
  callTimeoutMs: number
  maxWaitMs: number
  networkManager(): NetworkManagerClient
  commandChannel(): CommandChannelClient
  sporeService(): SporeServiceClient
  /** One unary call with the run's deadline and signal. */
  call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res>
}

/** Clients over mTLS with the node identity, each requiring the manager identity the contract names. */
export function createClients(
  identity: IdentityStore,
  networkId: string,
  init: ConformanceInit
): { networkManager(): NetworkManagerClient; commandChannel(): CommandChannelClient; sporeService(): SporeServiceClient; close(): void } {
  const options = defaultChannelOptions(networkId)
  const made: grpc.Client[] = []
  const lazy = <T extends grpc.Client>(address: string | undefined, what: string, build: (address: string) => T): (() => T) => {
    let client: T | undefined
    return () => {
      if (address == null) throw new CheckSkippedError(`no ${what} address given`)
      if (client == null) {
        client = build(address)
        made.push(client)
      }
      return client
    }
  }
  return {
    networkManager: lazy(
      init.networkManager,
      'Network Manager',
      (a) =>
        new NetworkManagerClient(
          a,
          clientCredentials(identity, { networkId, role: 'manager', name: SERVICE_NAMES.networkManager }),
          options
        )
    ),
    // Any manager may serve the command channel (the contract asks for a manager identity, not a name).
    commandChannel: lazy(
      init.commandChannel ?? init.networkManager,
      'Command Channel',
      (a) => new CommandChannelClient(a, clientCredentials(identity, { networkId, role: 'manager' }), options)
    ),
    sporeService: lazy(
      init.sporeService,
      'SporeService',
      (a) =>
        new SporeServiceClient(a, clientCredentials(identity, { networkId, role: 'manager', name: SERVICE_NAMES.sporeManager }), options)
    ),
    close: () => {
      for (const c of made.splice(0)) c.close()
    }
  }
}

export const statusName = (err: unknown): string => {
  const code = (err as Partial<grpc.ServiceError>).code
  return typeof code === 'number'
    ? `${grpc.status[code]}${(err as grpc.ServiceError).details ? `: ${(err as grpc.ServiceError).details}` : ''}`
    : String(err)
}

export const codeOf = (err: unknown): grpc.status | undefined => {
  const code = (err as Partial<grpc.ServiceError>).code
  return typeof code === 'number' ? code : undefined
}

/** The request a node sends, with this run's identity. */
export function registerRequest(ctx: CheckContext, patch: Partial<RegisterNodeRequest> = {}): RegisterNodeRequest {
  return {
    identity: NodeIdentity.fromPartial({ networkId: ctx.networkId, nodeId: ctx.nodeId }),
    capabilities: Capabilities.fromPartial({ cpuCores: 1, os: 'linux', arch: process.arch, agentVersion: 'mycelium-conformance' }),
    contractVersions: supportedContractVersions(),
    configVersion: 0,
    bootId: randomUUID(),
    fromPhase: Phase.DISCOVERY,
    completedCommandIds: [],
    ...patch
  }
}

/**
 * RegisterNode as an agent does it: a refusal with retry-after is waited out
 * (bounded by maxWaitMs, three attempts), so a check that needs a registration
 * is not failed by the admission control another check provoked.
 */
export async function register(ctx: CheckContext, patch: Partial<RegisterNodeRequest> = {}): Promise<RegisterNodeResponse> {
  const nm = ctx.networkManager()
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.call(nm.registerNode.bind(nm), registerRequest(ctx, patch))
    } catch (err) {
      const code = codeOf(err)
      const wait = retryAfterFromStatus(err as grpc.ServiceError)
      if (
        attempt >= 3 ||
        wait == null ||
        wait > ctx.maxWaitMs ||
        (code !== grpc.status.RESOURCE_EXHAUSTED && code !== grpc.status.UNAVAILABLE)
      )
        throw new CheckFailedError(`RegisterNode failed: ${statusName(err)}`)
      await sleep(wait, undefined, { signal: ctx.signal })
    }
  }
}

/** CommitHandoff for `reg`, returning the answer or the status error. */
export async function commit(
  ctx: CheckContext,
  handoffId: string,
  leaseId: string
): Promise<{ response?: CommitHandoffResponse; error?: grpc.ServiceError }> {
  const nm = ctx.networkManager()
  try {
    return { response: await ctx.call(nm.commitHandoff.bind(nm), { handoffId, leaseId, configVersion: 0 }) }
  } catch (err) {
    if (codeOf(err) == null) throw err
    return { error: err as grpc.ServiceError }
  }
}

/** A registration whose handoff was CONFIRMED: the node is MANAGED. */
export async function managed(ctx: CheckContext): Promise<RegisterNodeResponse> {
  const reg = await register(ctx)
  const leaseId = reg.lease?.leaseId ?? ''
  const { response, error } = await commit(ctx, reg.handoffId, leaseId)
  if (response?.outcome !== HandoffOutcome.CONFIRMED) {
    throw new CheckFailedError(
      `CommitHandoff of a fresh registration was not CONFIRMED (${error != null ? statusName(error) : `outcome ${response?.outcome}, reason "${response?.reason}"`})`
    )
  }
  return reg
}

/**
 * Heartbeats on `reg`'s lease at its interval, as a MANAGED agent does, so a
 * check that takes longer than the lease is not failed by its expiry. Returns stop.
 */
export function keepAlive(ctx: CheckContext, reg: RegisterNodeResponse): () => void {
  const stream = new HealthStream(ctx)
  let sequence = 0
  const beat = (): void => stream.send(reg.lease?.leaseId ?? '', ++sequence)
  beat()
  const timer = setInterval(beat, Math.max(50, durationToMs(reg.heartbeatInterval, 1000) / 2))
  timer.unref()
  return () => {
    clearInterval(timer)
    stream.close()
  }
}

/** Milliseconds left on a registration's lease, as the agent computes it. */
export function leaseRemainingMs(reg: RegisterNodeResponse): number | undefined {
  if (reg.leaseRemaining != null) return durationToMs(reg.leaseRemaining, 0)
  if (reg.lease?.ttl != null) return durationToMs(reg.lease.ttl, 0)
  return undefined
}

/** Waits for the first of: a value from `poll`, the timeout, or abort. */
async function waitFor<T>(
  poll: () => T | undefined,
  wake: { on(): Promise<void> },
  timeoutMs: number,
  signal: AbortSignal
): Promise<T | undefined> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = poll()
    if (v !== undefined) return v
    const left = end - Date.now()
    if (left <= 0) return undefined
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), left)
    try {
      await Promise.race([
        wake.on(),
        new Promise<void>((resolve) => timeout.signal.addEventListener('abort', () => resolve(), { once: true })),
        new Promise<void>((_, reject) => {
          if (signal.aborted) reject(signal.reason as Error)
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true })
        })
      ])
    } finally {
      clearTimeout(timer)
      timeout.abort()
    }
  }
}

/** A waker: `on()` resolves at the next `fire()`. */
function waker(): { on(): Promise<void>; fire(): void } {
  let resolvers: Array<() => void> = []
  return {
    on: () => new Promise<void>((resolve) => resolvers.push(resolve)),
    fire: () => {
      const r = resolvers
      resolvers = []
      for (const f of r) f()
    }
  }
}

/** A ReportHealth stream: send reports, read acks in order, see how it ended. */
export class HealthStream {
  private readonly acks: ReportHealthResponse[] = []
  private readonly wake = waker()
  private readonly call: grpc.ClientDuplexStream<ReportHealthRequest, ReportHealthResponse>
  error?: grpc.ServiceError
  ended = false

  constructor(private readonly ctx: CheckContext) {
    const nm = ctx.networkManager()
    this.call = nm.reportHealth()
    this.call.on('data', (ack: ReportHealthResponse) => {
      this.acks.push(ack)
      this.wake.fire()
    })
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err
      this.wake.fire()
    })
    this.call.on('end', () => {
      this.ended = true
      this.wake.fire()
    })
  }

  send(leaseId: string, sequence: number): void {
    this.call.write(
      ReportHealthRequest.fromPartial({ leaseId, sequence, sentAt: new Date(), phase: Phase.MANAGED, state: HealthState.HEALTHY })
    )
  }

  /** The next ack, or undefined when the stream ended or failed first (see `error`) or none came in time. */
  async next(): Promise<ReportHealthResponse | undefined> {
    return waitFor(
      () => this.acks.shift() ?? (this.error != null || this.ended ? null : undefined),
      this.wake,
      this.ctx.callTimeoutMs,
      this.ctx.signal
    ).then((v) => v ?? undefined)
  }

  close(): void {
    this.call.removeAllListeners('data')
    this.call.on('error', () => undefined)
    this.call.cancel()
  }
}

/** A CommandChannel session: hello, then commands in and updates out. */
export class CommandSession {
  private readonly commands: Command[] = []
  private readonly wake = waker()
  private readonly call: grpc.ClientDuplexStream<OpenRequest, OpenResponse>
  error?: grpc.ServiceError
  ended = false

  constructor(
    private readonly ctx: CheckContext,
    leaseId: string
  ) {
    const cc = ctx.commandChannel()
    this.call = cc.open()
    this.call.on('data', (msg: OpenResponse) => {
      if (msg.message?.$case === 'command') this.commands.push(msg.message.value)
      this.wake.fire()
    })
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err
      this.wake.fire()
    })
    this.call.on('end', () => {
      this.ended = true
      this.wake.fire()
    })
    this.call.write({
      message: {
        $case: 'hello',
        value: {
          identity: NodeIdentity.fromPartial({ networkId: ctx.networkId, nodeId: ctx.nodeId }),
          contractVersions: supportedContractVersions(),
          leaseId
        }
      }
    } as OpenRequest)
  }

  /** The next command, or undefined when the session ended, failed, or `timeoutMs` passed. */
  async nextCommand(timeoutMs = this.ctx.callTimeoutMs): Promise<Command | undefined> {
    return waitFor(
      () => this.commands.shift() ?? (this.error != null || this.ended ? null : undefined),
      this.wake,
      timeoutMs,
      this.ctx.signal
    ).then((v) => v ?? undefined)
  }

  /** Resolves true when the manager ends the session (error or end) within `timeoutMs`. */
  async closedByManager(timeoutMs: number): Promise<boolean> {
    const v = await waitFor(() => (this.error != null || this.ended ? true : undefined), this.wake, timeoutMs, this.ctx.signal)
    return v === true
  }

  update(commandId: string, state: number, reason = ''): void {
    this.call.write({ message: { $case: 'update', value: { commandId, state, reason, at: new Date(), replayed: false } } })
  }

  /**
   * Ends the session from the node's side after the manager has read every
   * update written (half-close, then wait for the manager to end it, bounded);
   * a plain cancel could drop updates still in flight.
   */
  async finish(): Promise<void> {
    if (this.error == null && !this.ended) {
      this.call.end()
      await this.closedByManager(this.ctx.callTimeoutMs)
    }
    this.close()
  }

  close(): void {
    this.call.removeAllListeners('data')
    this.call.on('error', () => undefined)
    this.call.cancel()
  }
}
