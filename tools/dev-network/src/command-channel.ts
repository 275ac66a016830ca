import * as grpc from '@grpc/grpc-js'
import { killStream } from './faults.js'
import { EventEmitter } from 'node:events'
import {
  TimeoutError,
  CommandState,
  type Command,
  type CommandChannelServer,
  type CommandUpdate,
  type OpenRequest,
  type OpenResponse
} from '@mycelium/core-interfaces'
import { callerIdentity } from '@mycelium/basic-net'
import type { DevNetworkManager } from './network-manager.js'

/** A command sent to a node and the statuses it reported. */
export interface CommandRecord {
  nodeId: string
  command: Command
  updates: CommandUpdate[]
}

export interface CommandChannelEvents {
  update: [nodeId: string, update: CommandUpdate]
  session: [nodeId: string, state: 'open' | 'closed']
}

type Session = grpc.ServerDuplexStream<OpenRequest, OpenResponse>

const TERMINAL = new Set([CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED])

/**
 * The manager's side of CommandChannel.Open: one session per node (the node
 * dials out), a queue per node for commands sent while it is away, and the
 * status history of every command.
 */
export class DevCommandChannel extends EventEmitter<CommandChannelEvents> {
  readonly records = new Map<string, CommandRecord>()
  private readonly sessions = new Map<string, Session>()
  private readonly pending = new Map<string, Command[]>()

  constructor(
    private readonly manager: DevNetworkManager,
    private readonly networkId: string
  ) {
    super()
  }

  isConnected(nodeId: string): boolean {
    return this.sessions.has(nodeId)
  }

  /**
   * Sends (or queues) a command; re-sending a known id sends it again
   * unchanged. A command without a final status is sent again on every new
   * session of its node.
   */
  send(nodeId: string, command: Command): void {
    if (!this.records.has(command.commandId)) this.records.set(command.commandId, { nodeId, command, updates: [] })
    const session = this.sessions.get(nodeId)
    if (session != null) session.write({ message: { $case: 'command', value: command } })
    else this.pending.set(nodeId, [...(this.pending.get(nodeId) ?? []), command])
  }

  /** Resolves with the command's updates once it reaches a final state (or `timeoutMs` passes). */
  async waitForOutcome(commandId: string, timeoutMs = 10_000): Promise<CommandUpdate[]> {
    const done = (): boolean => this.records.get(commandId)?.updates.some((u) => TERMINAL.has(u.state)) === true
    const end = Date.now() + timeoutMs
    while (!done()) {
      if (Date.now() > end) throw new TimeoutError(`command ${commandId} did not finish within ${timeoutMs} ms`, timeoutMs)
      await new Promise((r) => setTimeout(r, 10))
    }
    return this.records.get(commandId)!.updates
  }

  killStreams(): void {
    for (const s of this.sessions.values()) killStream(s)
    this.sessions.clear()
  }

  handlers(): CommandChannelServer {
    return {
      open: (call) => {
        let nodeId: string | undefined
        const fail = (code: grpc.status, details: string): void => {
          call.emit('error', { code, details })
        }
        call.on('data', (msg: OpenRequest) => {
          if (nodeId == null) {
            if (msg.message?.$case !== 'hello') {
              fail(grpc.status.FAILED_PRECONDITION, 'the first message must be a SessionHello')
              return
            }
            const caller = callerIdentity(call, { networkId: this.networkId, role: 'node' }).name
            const hello = msg.message.value
            if (hello.identity?.nodeId !== caller) {
              fail(grpc.status.PERMISSION_DENIED, `hello names node "${hello.identity?.nodeId}", certificate is "${caller}"`)
              return
            }
            const lease = this.manager.nodes.get(caller)?.lease
            if (lease == null || lease.leaseId !== hello.leaseId || lease.expired) {
              fail(grpc.status.FAILED_PRECONDITION, `lease "${hello.leaseId}" is not valid; register again`)
              return
            }
            nodeId = caller
            const previous = this.sessions.get(caller)
            if (previous != null) killStream(previous, 'replaced by a newer session')
            this.sessions.set(caller, call)
            // At-least-once delivery, as a real manager does: what was queued
            // while the node was away, then every command of this node with no
            // final status yet (the node answers a known id with its current
            // status and never runs it twice).
            const queued = this.pending.get(caller) ?? []
            this.pending.delete(caller)
            const unfinished = [...this.records.values()].filter(
              (r) =>
                r.nodeId === caller &&
                !queued.some((c) => c.commandId === r.command.commandId) &&
                !r.updates.some((u) => TERMINAL.has(u.state))
            )
            for (const command of [...queued, ...unfinished.map((r) => r.command)])
              call.write({ message: { $case: 'command', value: command } })
            this.emit('session', caller, 'open')
            return
          }
          if (msg.message?.$case === 'update') {
            const update = msg.message.value
            const record = this.records.get(update.commandId)
            record?.updates.push(update)
            this.emit('update', nodeId, update)
          }
        })
        const closed = (): void => {
          if (nodeId != null && this.sessions.get(nodeId) === call) {
            this.sessions.delete(nodeId)
            this.emit('session', nodeId, 'closed')
          }
        }
        call.on('end', () => {
          closed()
          call.end()
        })
        call.on('error', closed)
        call.on('cancelled', closed)
      }
    }
  }
}
