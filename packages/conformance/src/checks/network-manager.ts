import * as grpc from '@grpc/grpc-js'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  durationToMs,
  HandoffOutcome,
  retryAfterFromStatus,
  supportedContractVersions,
  type RegisterNodeResponse
} from '@mycelium/core-interfaces'
import { CheckFailedError, CheckSkippedError, expectThat } from '../errors.js'
import { codeOf, commit, HealthStream, leaseRemainingMs, managed, register, registerRequest, statusName } from '../context.js'
import type { Check } from './check.js'

const outcomeText = (r: { response?: { outcome: HandoffOutcome; reason: string }; error?: grpc.ServiceError }): string =>
  r.error != null ? statusName(r.error) : `${HandoffOutcome[r.response!.outcome] ?? r.response!.outcome} "${r.response!.reason}"`

/** Handoff deadline relative to receipt, as the agent derives it (handoff_timeout, else from the lease's clock estimate). */
function handoffTimeoutMs(reg: RegisterNodeResponse): number | undefined {
  if (reg.handoffTimeout != null) return durationToMs(reg.handoffTimeout, 0)
  if (reg.handoffDeadline != null && reg.lease?.expiresAt != null && reg.lease.ttl != null) {
    const managerNow = reg.lease.expiresAt.getTime() - durationToMs(reg.lease.ttl, 0)
    return reg.handoffDeadline.getTime() - managerNow
  }
  return undefined
}

/** Not CONFIRMED: an error status or REFUSED with a reason. */
function expectNotConfirmed(
  r: { response?: { outcome: HandoffOutcome; reason: string }; error?: grpc.ServiceError },
  what: string
): string {
  if (r.error != null) return `${what}: ${statusName(r.error)}`
  expectThat(r.response!.outcome !== HandoffOutcome.CONFIRMED, `${what} was CONFIRMED`)
  expectThat(
    r.response!.outcome === HandoffOutcome.REFUSED,
    `${what} answered outcome ${r.response!.outcome}, neither REFUSED nor an error`
  )
  expectThat(r.response!.reason !== '', `${what} was REFUSED without a reason`)
  return `${what}: REFUSED "${r.response!.reason}"`
}

export const registrationContractNegotiation: Check = {
  name: 'registration.contract-negotiation',
  proves:
    "RegisterNode answers the node's contract range with a version inside it, a lease, a heartbeat interval and a handoff to commit; a range the manager cannot speak is refused, never answered with a version outside it.",
  async run(ctx) {
    const range = supportedContractVersions()
    const reg = await register(ctx)
    expectThat(
      reg.contractVersion >= range.min && reg.contractVersion <= range.max,
      `chose contract version ${reg.contractVersion}, outside the node's range ${range.min}–${range.max}`
    )
    expectThat(reg.lease != null && reg.lease.leaseId !== '', 'gave no lease id')
    expectThat(reg.lease.expiresAt != null || reg.leaseRemaining != null, 'gave the lease no expiry (lease.expires_at or lease_remaining)')
    expectThat((leaseRemainingMs(reg) ?? 0) > 0, 'gave a lease with no time left')
    expectThat(reg.heartbeatInterval != null && durationToMs(reg.heartbeatInterval, 0) > 0, 'gave no heartbeat interval')
    expectThat(reg.handoffId !== '', 'opened no handoff (empty handoff_id)')
    expectThat((handoffTimeoutMs(reg) ?? 0) > 0, 'gave the handoff no deadline (handoff_timeout or handoff_deadline)')
    const nm = ctx.networkManager()
    const future = { min: range.max + 1000, max: range.max + 1001 }
    try {
      const res = await ctx.call(nm.registerNode.bind(nm), registerRequest(ctx, { contractVersions: future }))
      throw new CheckFailedError(
        `accepted the contract range ${future.min}–${future.max} it cannot speak, answering version ${res.contractVersion}`
      )
    } catch (err) {
      if (codeOf(err) == null) throw err
      return `version ${reg.contractVersion} of ${range.min}–${range.max}; range ${future.min}–${future.max} refused with ${statusName(err)}`
    }
  }
}

export const handoffCommit: Check = {
  name: 'handoff.commit',
  proves:
    "CommitHandoff naming the registration's handoff and lease before the deadline is CONFIRMED: the manager takes control only on the node's commit.",
  async run(ctx) {
    const reg = await register(ctx)
    const r = await commit(ctx, reg.handoffId, reg.lease!.leaseId)
    expectThat(r.response?.outcome === HandoffOutcome.CONFIRMED, `the commit was answered ${outcomeText(r)}, not CONFIRMED`)
    return `handoff ${reg.handoffId} CONFIRMED`
  }
}

export const handoffRefuseUnknown: Check = {
  name: 'handoff.refuse-unknown',
  proves:
    'A commit for a handoff the manager never opened, or for one a newer registration superseded, is never CONFIRMED (an error status, or REFUSED with a reason): a node is never confirmed on a commit the manager did not ask for.',
  async run(ctx) {
    const first = await register(ctx)
    const notes = [expectNotConfirmed(await commit(ctx, randomUUID(), first.lease!.leaseId), 'a commit naming a handoff never opened')]
    const second = await register(ctx)
    if (second.handoffId !== first.handoffId) {
      notes.push(expectNotConfirmed(await commit(ctx, first.handoffId, second.lease!.leaseId), 'a commit naming a superseded handoff'))
    }
    const ok = await commit(ctx, second.handoffId, second.lease!.leaseId)
    expectThat(ok.response?.outcome === HandoffOutcome.CONFIRMED, `the current handoff was then answered ${outcomeText(ok)}, not CONFIRMED`)
    return notes.join('; ')
  }
}

export const handoffDeadline: Check = {
  name: 'handoff.deadline',
  proves:
    'A commit arriving after the handoff deadline is never CONFIRMED, even while the lease is kept alive: the node that missed it keeps local control and registers again.',
  async run(ctx) {
    const reg = await register(ctx)
    const timeoutMs = handoffTimeoutMs(reg)
    expectThat(timeoutMs != null && timeoutMs > 0, 'gave the handoff no deadline')
    if (timeoutMs > ctx.maxWaitMs)
      throw new CheckSkippedError(`the handoff deadline (${timeoutMs} ms) is longer than the longest wait (${ctx.maxWaitMs} ms)`)
    // Heartbeat through the wait so only the handoff deadline, not the lease, can explain a refusal.
    const stream = new HealthStream(ctx)
    const end = Date.now() + timeoutMs + 500
    const intervalMs = Math.max(100, Math.min(durationToMs(reg.heartbeatInterval, 1000), 1000))
    try {
      let seq = 0
      while (Date.now() < end) {
        stream.send(reg.lease!.leaseId, ++seq)
        await sleep(Math.min(intervalMs, Math.max(0, end - Date.now())), undefined, { signal: ctx.signal })
      }
    } finally {
      stream.close()
    }
    return expectNotConfirmed(
      await commit(ctx, reg.handoffId, reg.lease!.leaseId),
      `a commit ${timeoutMs + 500} ms after a ${timeoutMs} ms deadline`
    )
  }
}

export const heartbeatAcks: Check = {
  name: 'heartbeat.acks',
  proves:
    'Every health report on a valid lease is acked in order, echoing its sequence, with a lease renewal (lease_remaining or lease_expires_at) and without revoking the lease.',
  async run(ctx) {
    const reg = await managed(ctx)
    const stream = new HealthStream(ctx)
    try {
      let lastExpiry = 0
      for (const seq of [1, 2, 3]) {
        stream.send(reg.lease!.leaseId, seq)
        const ack = await stream.next()
        expectThat(
          ack != null,
          `report ${seq} got no ack (${stream.error != null ? statusName(stream.error) : stream.ended ? 'the stream ended' : 'none in time'})`
        )
        expectThat(ack.sequence === seq, `report ${seq} was acked with sequence ${ack.sequence}`)
        expectThat(!ack.leaseRevoked, `report ${seq} on a valid lease was answered lease_revoked ("${ack.reason}")`)
        expectThat(
          ack.leaseRemaining != null || ack.leaseExpiresAt != null,
          `the ack of report ${seq} renews nothing (no lease_remaining, no lease_expires_at)`
        )
        if (ack.leaseRemaining != null)
          expectThat(durationToMs(ack.leaseRemaining, 0) > 0, `the ack of report ${seq} leaves no time on the lease`)
        if (ack.leaseExpiresAt != null) {
          expectThat(ack.leaseExpiresAt.getTime() >= lastExpiry, `the ack of report ${seq} moved the lease expiry backwards`)
          lastExpiry = ack.leaseExpiresAt.getTime()
        }
      }
      return 'reports 1, 2, 3 acked in order with renewals'
    } finally {
      stream.close()
    }
  }
}

export const heartbeatGenerations: Check = {
  name: 'heartbeat.generations',
  proves:
    'The config version and assignment generation an ack announces are what RequestConfigUpdate and RequestAssignments serve: nothing at the current one, the current config and set below it, so a node never misses or loops on a change.',
  async run(ctx) {
    const reg = await managed(ctx)
    const leaseId = reg.lease!.leaseId
    const stream = new HealthStream(ctx)
    let ack
    try {
      stream.send(leaseId, 1)
      ack = await stream.next()
    } finally {
      stream.close()
    }
    expectThat(ack != null && !ack.leaseRevoked, 'the first health report was not acked on a valid lease')
    const nm = ctx.networkManager()
    const notes: string[] = []
    const latest = ack.latestConfigVersion
    const atLatest = await ctx.call(nm.requestConfigUpdate.bind(nm), { currentVersion: latest })
    expectThat(
      atLatest.config == null,
      `RequestConfigUpdate at the announced version ${latest} returned config version ${atLatest.config?.version}`
    )
    if (latest > 0) {
      const below = await ctx.call(nm.requestConfigUpdate.bind(nm), { currentVersion: latest - 1 })
      expectThat(below.config != null, `RequestConfigUpdate below the announced version ${latest} returned no config`)
      expectThat(
        below.config.version === latest,
        `RequestConfigUpdate below ${latest} returned version ${below.config.version}, not the announced one`
      )
      notes.push(`config v${latest} served`)
    } else notes.push('no config published (only "nothing newer" checked)')
    const generation = ack.assignmentsGeneration
    const same = await ctx.call(nm.requestAssignments.bind(nm), { leaseId, knownGeneration: generation })
    expectThat(
      !same.changed && same.assignments.length === 0,
      `RequestAssignments at the announced generation ${generation} answered changed with ${same.assignments.length} assignments`
    )
    expectThat(same.generation === generation, `RequestAssignments answers generation ${same.generation}, the ack announced ${generation}`)
    if (generation > 0) {
      const older = await ctx.call(nm.requestAssignments.bind(nm), { leaseId, knownGeneration: generation - 1 })
      expectThat(
        older.changed && older.generation === generation,
        `RequestAssignments below generation ${generation} answered changed=${older.changed} generation ${older.generation}`
      )
      notes.push(`assignments generation ${generation} served (${older.assignments.length})`)
    } else notes.push('no assignments (only "nothing newer" checked)')
    return notes.join('; ')
  }
}

export const leaseExpiry: Check = {
  name: 'lease.expiry',
  proves:
    'A lease not renewed within its time is gone: a heartbeat on it is answered lease_revoked (or refused) and RequestAssignments with it is refused, so the node falls back and registers again.',
  async run(ctx) {
    const reg = await managed(ctx)
    const leaseId = reg.lease!.leaseId
    const remaining = leaseRemainingMs(reg)
    expectThat(remaining != null, 'gave the lease no length')
    if (remaining > ctx.maxWaitMs)
      throw new CheckSkippedError(`the lease (${remaining} ms) is longer than the longest wait (${ctx.maxWaitMs} ms)`)
    await sleep(remaining + 1000, undefined, { signal: ctx.signal })
    const nm = ctx.networkManager()
    const notes: string[] = []
    try {
      const res = await ctx.call(nm.requestAssignments.bind(nm), { leaseId, knownGeneration: 0 })
      throw new CheckFailedError(
        `RequestAssignments on a lease expired ${remaining + 1000} ms after its grant answered generation ${res.generation}`
      )
    } catch (err) {
      if (codeOf(err) == null) throw err
      notes.push(`RequestAssignments refused: ${statusName(err)}`)
    }
    const stream = new HealthStream(ctx)
    try {
      stream.send(leaseId, 1)
      const ack = await stream.next()
      if (ack != null) {
        expectThat(ack.leaseRevoked, 'a heartbeat on the expired lease was acked without lease_revoked')
        notes.push(`heartbeat answered lease_revoked "${ack.reason}"`)
      } else {
        expectThat(stream.error != null || stream.ended, 'a heartbeat on the expired lease was neither acked nor refused')
        notes.push(`heartbeat refused: ${stream.error != null ? statusName(stream.error) : 'stream ended'}`)
      }
    } finally {
      stream.close()
    }
    return notes.join('; ')
  }
}

export const admissionRetryAfter: Check = {
  name: 'admission.retry-after',
  proves:
    'A manager refusing registrations for load answers RESOURCE_EXHAUSTED (or UNAVAILABLE) with "retry-after-ms" metadata the node can honour, and admits the node again once it has waited that long.',
  async run(ctx) {
    const burst = ctx.init.admissionBurst ?? 200
    const nm = ctx.networkManager()
    const outcomes = await Promise.all(
      Array.from({ length: burst }, () =>
        ctx.call(nm.registerNode.bind(nm), registerRequest(ctx)).then(
          () => undefined,
          (err: unknown) => err as grpc.ServiceError
        )
      )
    )
    const refused = outcomes.filter(
      (e): e is grpc.ServiceError => e != null && (codeOf(e) === grpc.status.RESOURCE_EXHAUSTED || codeOf(e) === grpc.status.UNAVAILABLE)
    )
    const other = outcomes.find((e) => e != null && !refused.includes(e))
    if (other != null) throw new CheckFailedError(`a registration in a burst of ${burst} failed with ${statusName(other)}`)
    if (refused.length === 0)
      throw new CheckSkippedError(
        `all ${burst} concurrent registrations were admitted: RESOURCE_EXHAUSTED could not be provoked (raise --admission-burst)`
      )
    const missing = refused.filter((e) => retryAfterFromStatus(e) == null)
    if (missing.length > 0) {
      const raw = missing[0]!.metadata?.get('retry-after-ms')[0]
      throw new CheckFailedError(
        `${missing.length} of ${refused.length} refusals (${statusName(missing[0])}) carry no usable "retry-after-ms" metadata (${raw == null ? 'absent' : `"${String(raw)}"`})`
      )
    }
    const waitMs = Math.max(...refused.map((e) => retryAfterFromStatus(e)!))
    if (waitMs > ctx.maxWaitMs)
      return `${refused.length} of ${burst} refused with retry-after (longest ${waitMs} ms, longer than the longest wait: re-admission not checked)`
    await sleep(waitMs, undefined, { signal: ctx.signal })
    try {
      await ctx.call(nm.registerNode.bind(nm), registerRequest(ctx))
    } catch (err) {
      throw new CheckFailedError(`after waiting the retry-after of ${waitMs} ms, RegisterNode was refused again: ${statusName(err)}`)
    }
    return `${refused.length} of ${burst} refused with retry-after-ms (≤ ${waitMs} ms); admitted after waiting it`
  }
}
