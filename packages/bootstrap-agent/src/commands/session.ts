import * as grpc from '@grpc/grpc-js'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CommandChannelClient,
  silentLogger,
  supportedContractVersions,
  type CommandUpdate,
  type Endpoint,
  type Logger,
  type NodeIdentity,
  type OpenRequest,
  type OpenResponse,
  strictClient
} from '@mycelium/core-interfaces'
import { Backoff, type BackoffOptions, credentialsFor, type EndpointCredentials } from '@mycelium/core-utils'
import type { CommandExecutor } from './executor.js'

/** Commands are decoded strictly (canonical varints, timestamps in range). */
const StrictCommandChannelClient = strictClient(CommandChannelClient)

export interface CommandSessionInit {
  endpoint: Endpoint
  /** Per endpoint (basic-net `endpointCredentials`) so `expected_identity` is enforced. */
  credentials: EndpointCredentials
  channelOptions?: grpc.ChannelOptions
  identity: NodeIdentity
  leaseId: string
  reconnect?: BackoffOptions
  logger?: Logger
}

/**
 * The node's side of CommandChannel.Open while MANAGED: dials out (works
 * behind NAT), says hello with its lease, hands commands to the executor and
 * streams their statuses back. The credentials accept only a manager
 * certificate, so a node-role server can never send commands. Reopened with
 * capped, jittered backoff when it drops; closed when the node leaves MANAGED.
 */
export class CommandSession {
  private controller = new AbortController()
  private stream?: grpc.ClientDuplexStream<OpenRequest, OpenResponse>
  private client?: CommandChannelClient
  private readonly log: Logger
  /** The hello was written on the current stream and it has not ended. */
  private open = false
  private readonly onUpdate = (update: CommandUpdate, source: 'remote' | 'local'): void => {
    if (source === 'remote') this.send(update)
  }

  /** Writes a status on an open session; otherwise it stays undelivered and goes on the next one. */
  private send(update: CommandUpdate): void {
    if (!this.open || this.stream == null) return
    this.stream.write({ message: { $case: 'update', value: update } })
    this.executor.markDelivered(update.commandId)
  }

  constructor(
    private readonly executor: CommandExecutor,
    private readonly init: CommandSessionInit
  ) {
    this.log = (init.logger ?? silentLogger()).forComponent('bootstrap-agent:command-session')
  }

  start(): void {
    this.executor.on('update', this.onUpdate)
    void this.loop(this.controller.signal)
  }

  stop(): void {
    this.open = false
    this.controller.abort()
    this.executor.off('update', this.onUpdate)
    this.stream?.cancel()
    this.client?.close()
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 250, maxMs: 10_000, ...this.init.reconnect })
    this.client = new StrictCommandChannelClient(
      this.init.endpoint.address,
      credentialsFor(this.init.credentials, this.init.endpoint),
      this.init.channelOptions
    )
    while (!signal.aborted) {
      const reason = await this.once(signal)
      if (signal.aborted) return
      const delay = backoff.next()
      this.log.warn('command session closed; reopening', { reason, delayMs: delay })
      try {
        await sleep(delay, undefined, { signal })
      } catch {
        return
      }
    }
  }

  /** One session; resolves with why it ended. */
  private once(signal: AbortSignal): Promise<string> {
    return new Promise((resolve) => {
      const stream = this.client!.open()
      this.stream = stream
      stream.on('data', (msg: OpenResponse) => {
        if (msg.message?.$case === 'command') void this.executor.submit(msg.message.value, 'remote')
      })
      stream.on('error', (err: grpc.ServiceError) => {
        this.open = false
        resolve(`${grpc.status[err.code] ?? err.code}: ${err.details}`)
      })
      stream.on('end', () => {
        this.open = false
        resolve('the manager ended the session')
      })
      if (signal.aborted) {
        stream.cancel()
        return
      }
      stream.write({
        message: {
          $case: 'hello',
          value: { identity: this.init.identity, contractVersions: supportedContractVersions(), leaseId: this.init.leaseId }
        }
      })
      this.open = true
      // Statuses the manager may have missed (commands finished while no
      // session was open, or resolved after a restart) go first.
      const missed = this.executor.undelivered()
      for (const update of missed) this.send(update)
      this.log.info('command session open', { endpoint: this.init.endpoint.address, resent: missed.length })
    })
  }
}
