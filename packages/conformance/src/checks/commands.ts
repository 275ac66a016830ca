import { verify } from 'node:crypto'
import { CommandState, EmergencyOperation, type Command } from '@mycelium/core-interfaces'
import { trustedOperatorKeys } from '@mycelium/spore-client'
import { CheckFailedError, CheckSkippedError, expectThat } from '../errors.js'
import { CommandSession, keepAlive, managed, statusName, type CheckContext } from '../context.js'
import type { Check } from './check.js'

/** Starts the trigger; its outcome is awaited (bounded) once the command was handled. */
function trigger(ctx: CheckContext, kind: 'restart' | 'emergency'): Promise<void> {
  const send = ctx.init.triggers?.sendCommand
  if (send == null)
    throw new CheckSkippedError(`no way to make the manager send a ${kind} command (give a command trigger / --command-hook)`)
  const p = send({ nodeId: ctx.nodeId, networkId: ctx.networkId, kind, signal: ctx.signal })
  p.catch(() => undefined) // awaited later; never an unhandled rejection meanwhile
  return p
}

async function settle(p: Promise<void>, what: string): Promise<void> {
  try {
    await p
  } catch (err) {
    throw new CheckFailedError(`the ${what} trigger failed: ${(err as Error).message}`)
  }
}

/** The next command, or the trigger's failure as soon as it fails (not after the whole wait). */
async function commandAfter(session: CommandSession, sent: Promise<void>, what: string, timeoutMs: number): Promise<Command | undefined> {
  const failed = sent.then(
    () => new Promise<never>(() => undefined),
    (err: unknown) => {
      throw new CheckFailedError(`the ${what} trigger failed: ${(err as Error).message}`)
    }
  )
  return Promise.race([session.nextCommand(timeoutMs), failed])
}

function expectWellFormed(command: Command): void {
  expectThat(command.commandId !== '', 'a command arrived with an empty command_id')
  expectThat(command.kind != null, `command ${command.commandId} has no kind`)
  expectThat(command.issuedAt != null, `command ${command.commandId} has no issued_at`)
  expectThat(command.deadline != null, `command ${command.commandId} has no deadline`)
  expectThat(command.deadline.getTime() > command.issuedAt.getTime(), `command ${command.commandId} has a deadline not after its issued_at`)
}

const describeEnd = (s: CommandSession): string => (s.error != null ? statusName(s.error) : s.ended ? 'the session ended' : 'none in time')

export const commandsSession: Check = {
  name: 'commands.session',
  proves:
    'CommandChannel.Open refuses a session whose hello names a lease the manager did not grant, so commands reach only a node it manages.',
  async run(ctx) {
    const stopBeats = keepAlive(ctx, await managed(ctx))
    const session = new CommandSession(ctx, `not-a-lease-${Date.now()}`)
    try {
      const closed = await session.closedByManager(ctx.callTimeoutMs)
      expectThat(closed, `a session with an unknown lease was still open after ${ctx.callTimeoutMs} ms`)
      return `refused: ${describeEnd(session)}`
    } finally {
      session.close()
      stopBeats()
    }
  }
}

export const commandsDelivery: Check = {
  name: 'commands.delivery',
  proves:
    'A command carries an id, issued_at, a deadline after it and a kind; one the node has not finished is sent again with the same id on its next session (at-least-once, idempotent by id), and one reported ACCEPTED, RUNNING, SUCCEEDED in that order is not sent again.',
  async run(ctx) {
    const reg = await managed(ctx)
    const leaseId = reg.lease!.leaseId
    const stopBeats = keepAlive(ctx, reg)
    let session = new CommandSession(ctx, leaseId)
    const sent = trigger(ctx, 'restart')
    try {
      const first = await commandAfter(session, sent, 'command', ctx.maxWaitMs)
      expectThat(first != null, `no command arrived after the trigger (${describeEnd(session)})`)
      expectWellFormed(first)
      session.update(first.commandId, CommandState.ACCEPTED)
      await session.finish()
      session = new CommandSession(ctx, leaseId)
      const again = await session.nextCommand()
      expectThat(again != null, `command ${first.commandId}, left ACCEPTED, was not sent again on a new session (${describeEnd(session)})`)
      expectThat(again.commandId === first.commandId, `a new session got command ${again.commandId}, not the unfinished ${first.commandId}`)
      session.update(first.commandId, CommandState.ACCEPTED)
      session.update(first.commandId, CommandState.RUNNING)
      session.update(first.commandId, CommandState.SUCCEEDED)
      await settle(sent, 'command')
      await session.finish()
      // A second command on a fresh session: the finished one would be sent first if it were re-sent.
      session = new CommandSession(ctx, leaseId)
      const sentAgain = trigger(ctx, 'restart')
      const next = await commandAfter(session, sentAgain, 'command', ctx.maxWaitMs)
      expectThat(next != null, `no second command arrived (${describeEnd(session)})`)
      expectThat(next.commandId !== first.commandId, `command ${first.commandId}, reported SUCCEEDED, was sent again`)
      for (const state of [CommandState.ACCEPTED, CommandState.RUNNING, CommandState.SUCCEEDED]) session.update(next.commandId, state)
      await settle(sentAgain, 'command')
      await session.finish()
      return `command ${first.commandId} re-sent while unfinished, not after SUCCEEDED`
    } finally {
      session.close()
      stopBeats()
    }
  }
}

export const commandsEmergencySignature: Check = {
  name: 'commands.emergency-signature',
  proves:
    "An emergency command's signed operation names that command id, this network and this node, has not expired, and carries valid signatures by operator keys of the trust bundle up to its operator_threshold.",
  async run(ctx) {
    if (ctx.trustBundle == null)
      throw new CheckSkippedError('no trust bundle (enrol with a join token or give --trust-bundle) to verify operator signatures against')
    const operators = trustedOperatorKeys(ctx.trustBundle, ctx.networkId)
    const reg = await managed(ctx)
    const stopBeats = keepAlive(ctx, reg)
    const session = new CommandSession(ctx, reg.lease!.leaseId)
    const sent = trigger(ctx, 'emergency')
    try {
      const command = await commandAfter(session, sent, 'emergency command', ctx.maxWaitMs)
      expectThat(command != null, `no command arrived after the emergency trigger (${describeEnd(session)})`)
      expectWellFormed(command)
      expectThat(command.kind?.$case === 'emergency', `the emergency trigger sent a ${command.kind?.$case} command`)
      const { operation, signatures } = command.kind.value
      let op: EmergencyOperation
      try {
        op = EmergencyOperation.decode(operation)
      } catch (err) {
        throw new CheckFailedError(`the emergency operation does not decode: ${(err as Error).message}`)
      }
      expectThat(
        op.commandId === command.commandId,
        `the signed operation names command "${op.commandId}", the command is "${command.commandId}"`
      )
      expectThat(op.networkId === ctx.networkId, `the signed operation names network "${op.networkId}", not "${ctx.networkId}"`)
      expectThat(op.nodeId === ctx.nodeId, `the signed operation names node "${op.nodeId}", not "${ctx.nodeId}"`)
      expectThat(op.expiresAt != null && op.expiresAt.getTime() > Date.now(), 'the signed operation has no expiry or has expired')
      const valid = new Set<string>()
      for (const s of signatures) {
        const key = operators.keys.get(s.keyId)
        if (key != null && verify(null, operation, key, s.signature)) valid.add(s.keyId)
      }
      expectThat(
        valid.size >= operators.threshold,
        `${valid.size} valid signatures by distinct operator keys of the trust bundle, the threshold is ${operators.threshold} (${signatures.length} given)`
      )
      session.update(command.commandId, CommandState.REJECTED, 'conformance kit: verified, not executed')
      await settle(sent, 'emergency command')
      await session.finish()
      return `operation ${op.action} for ${op.nodeId} signed by ${valid.size} operator key(s) (threshold ${operators.threshold})`
    } finally {
      session.close()
      stopBeats()
    }
  }
}
