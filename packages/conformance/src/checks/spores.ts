import * as grpc from '@grpc/grpc-js'
import { randomBytes } from 'node:crypto'
import { Spore, type SignedSpore, type WatchSporesResponse } from '@mycelium/core-interfaces'
import { trustedSporeKeys, verifySpore } from '@mycelium/spore-client'
import { CheckFailedError, CheckSkippedError, expectThat } from '../errors.js'
import { codeOf, statusName, type CheckContext } from '../context.js'
import type { Check } from './check.js'

interface Seen {
  name: string
  sequence: number
  bytes: string
}

/** Decodes (and, with a trust bundle, verifies) a spore as the agent would accept it. */
function accept(ctx: CheckContext, signed: SignedSpore, source: string): Seen {
  if (ctx.trustBundle != null) {
    try {
      const { verified } = verifySpore(signed, {
        trust: trustedSporeKeys(ctx.trustBundle, ctx.networkId),
        nowMs: Date.now(),
        clockSlackMs: 60_000,
        source,
        markFor: () => undefined
      })
      return { name: verified.name, sequence: verified.sequence, bytes: Buffer.from(signed.spore).toString('base64') }
    } catch (err) {
      throw new CheckFailedError(`${source}: a spore the agent would refuse: ${(err as Error).message}`)
    }
  }
  let spore: Spore
  try {
    spore = Spore.decode(signed.spore)
  } catch (err) {
    throw new CheckFailedError(`${source}: a spore that does not decode: ${(err as Error).message}`)
  }
  return { name: spore.name, sequence: spore.sequence, bytes: Buffer.from(signed.spore).toString('base64') }
}

async function list(ctx: CheckContext): Promise<Map<string, Seen>> {
  const ss = ctx.sporeService()
  const res = await ctx.call(ss.listSpores.bind(ss), { namePrefix: '' })
  const byName = new Map<string, Seen>()
  for (const s of res.spores) {
    const seen = accept(ctx, s, 'ListSpores')
    expectThat(!byName.has(seen.name), `ListSpores returned "${seen.name}" twice`)
    byName.set(seen.name, seen)
  }
  return byName
}

/** A WatchSpores stream: batches in order, and how it ended. */
class Watch {
  readonly batches: WatchSporesResponse[] = []
  private waiters: Array<() => void> = []
  error?: grpc.ServiceError
  ended = false
  private readonly call: grpc.ClientReadableStream<WatchSporesResponse>

  constructor(ctx: CheckContext, knownSequences: Record<string, number>) {
    const ss = ctx.sporeService()
    this.call = ss.watchSpores({ namePrefix: '', knownSequences })
    const wake = (): void => {
      const w = this.waiters
      this.waiters = []
      for (const f of w) f()
    }
    this.call.on('data', (b: WatchSporesResponse) => {
      this.batches.push(b)
      wake()
    })
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err
      wake()
    })
    this.call.on('end', () => {
      this.ended = true
      wake()
    })
  }

  /** Resolves when `done()` holds, the stream ends or fails, or `timeoutMs` passes; true when `done()` held. */
  async until(done: () => boolean, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const end = Date.now() + timeoutMs
    while (!done()) {
      if (this.error != null || this.ended || Date.now() >= end || signal.aborted) return false
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, end - Date.now())
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return true
  }

  close(): void {
    this.call.removeAllListeners('data')
    this.call.on('error', () => undefined)
    this.call.cancel()
  }

  describe(): string {
    return this.error != null ? statusName(this.error) : this.ended ? 'the stream ended' : 'nothing more in time'
  }
}

const snapshotOf = (w: Watch): WatchSporesResponse[] => {
  const i = w.batches.findIndex((b) => b.snapshotComplete)
  return i < 0 ? [] : w.batches.slice(0, i + 1)
}

export const sporesListGet: Check = {
  name: 'spores.list-get',
  proves:
    'ListSpores returns one spore per name, each one the agent accepts (decodes strictly; with a trust bundle, signed to threshold, of this network, unexpired), GetSpore returns the same bytes for each name, and an unknown name is NOT_FOUND.',
  async run(ctx) {
    const byName = await list(ctx)
    expectThat(byName.size > 0, 'ListSpores returned no spores (a network publishes at least its bootstrap spore)')
    const ss = ctx.sporeService()
    for (const [name, seen] of byName) {
      const one = await ctx.call(ss.getSpore.bind(ss), { name })
      expectThat(one.spore != null, `GetSpore("${name}") returned no spore`)
      const got = accept(ctx, one.spore, `GetSpore("${name}")`)
      expectThat(got.name === name, `GetSpore("${name}") returned "${got.name}"`)
      expectThat(got.sequence >= seen.sequence, `GetSpore("${name}") returned sequence ${got.sequence}, below ListSpores' ${seen.sequence}`)
      if (got.sequence === seen.sequence)
        expectThat(got.bytes === seen.bytes, `GetSpore("${name}") returned other bytes than ListSpores at the same sequence`)
    }
    const unknown = `component/conformance-${randomBytes(4).toString('hex')}`
    try {
      await ctx.call(ss.getSpore.bind(ss), { name: unknown })
      throw new CheckFailedError(`GetSpore("${unknown}") answered a spore for a name never published`)
    } catch (err) {
      if (codeOf(err) == null) throw err
      expectThat(codeOf(err) === grpc.status.NOT_FOUND, `GetSpore of an unknown name answered ${statusName(err)}, not NOT_FOUND`)
    }
    return `${byName.size} spores (${[...byName.keys()].join(', ')})${ctx.trustBundle == null ? '; signatures not verified (no trust bundle)' : ', verified'}`
  }
}

export const sporesWatchResume: Check = {
  name: 'spores.watch-resume',
  proves:
    "WatchSpores first sends the current set, ending with snapshot_complete; a watch resumed with known_sequences resends exactly the spores newer than the caller's, so a reconnecting node neither misses nor re-downloads spores.",
  async run(ctx) {
    const current = await list(ctx)
    expectThat(current.size > 0, 'ListSpores returned no spores to watch')
    const fresh = new Watch(ctx, {})
    try {
      expectThat(
        await fresh.until(() => snapshotOf(fresh).length > 0, ctx.callTimeoutMs, ctx.signal),
        `a watch from nothing never completed its snapshot (${fresh.describe()})`
      )
      const names = new Set(snapshotOf(fresh).flatMap((b) => b.spores.map((s) => accept(ctx, s, 'WatchSpores').name)))
      for (const name of current.keys()) expectThat(names.has(name), `the snapshot of a watch from nothing lacks "${name}"`)
    } finally {
      fresh.close()
    }
    const known = Object.fromEntries([...current.values()].map((s) => [s.name, s.sequence]))
    const [behind] = [...current.values()].filter((s) => s.sequence > 0)
    if (behind != null) known[behind.name] = behind.sequence - 1
    const resumed = new Watch(ctx, known)
    try {
      expectThat(
        await resumed.until(() => snapshotOf(resumed).length > 0, ctx.callTimeoutMs, ctx.signal),
        `a resumed watch never completed its snapshot (${resumed.describe()})`
      )
      const sent = snapshotOf(resumed).flatMap((b) => b.spores.map((s) => accept(ctx, s, 'WatchSpores (resumed)')))
      for (const s of sent)
        expectThat(
          s.sequence > (known[s.name] ?? 0),
          `a resumed watch resent "${s.name}" at sequence ${s.sequence}, which the caller said it has`
        )
      if (behind != null)
        expectThat(
          sent.some((s) => s.name === behind.name),
          `a resumed watch did not send "${behind.name}", newer than the caller's sequence ${known[behind.name]}`
        )
      return `snapshot of ${current.size}; resumed watch sent ${sent.length} (${sent.map((s) => `${s.name}@${s.sequence}`).join(', ') || 'none'})`
    } finally {
      resumed.close()
    }
  }
}

export const sporesWatchChanges: Check = {
  name: 'spores.watch-changes',
  proves:
    'A spore published while a watch is open reaches the watcher on that same stream with its new sequence: a node learns of new managers without polling.',
  async run(ctx) {
    const change = ctx.init.triggers?.changeSpores
    if (change == null)
      throw new CheckSkippedError('no way to make the Spore Manager publish a change (give a spore trigger / --spore-change-hook)')
    const before = await list(ctx)
    const known = Object.fromEntries([...before.values()].map((s) => [s.name, s.sequence]))
    const watch = new Watch(ctx, known)
    try {
      expectThat(
        await watch.until(() => snapshotOf(watch).length > 0, ctx.callTimeoutMs, ctx.signal),
        `the watch never completed its snapshot (${watch.describe()})`
      )
      const afterSnapshot = watch.batches.length
      try {
        await change({ networkId: ctx.networkId, signal: ctx.signal })
      } catch (err) {
        throw new CheckFailedError(`the spore change trigger failed: ${(err as Error).message}`)
      }
      const after = await list(ctx)
      const changed = [...after.values()].filter((s) => s.sequence > (known[s.name] ?? 0))
      if (changed.length === 0) throw new CheckSkippedError('the trigger published nothing new (ListSpores shows no higher sequence)')
      const delivered = (): Set<string> =>
        new Set(watch.batches.slice(afterSnapshot).flatMap((b) => b.spores.map((s) => accept(ctx, s, 'WatchSpores').name)))
      const all = await watch.until(() => changed.every((s) => delivered().has(s.name)), ctx.maxWaitMs, ctx.signal)
      const missing = changed.filter((s) => !delivered().has(s.name)).map((s) => `${s.name}@${s.sequence}`)
      expectThat(all, `the open watch never sent ${missing.join(', ')}, which ListSpores shows as changed (${watch.describe()})`)
      return `the open watch sent ${changed.map((s) => `${s.name}@${s.sequence}`).join(', ')}`
    } finally {
      watch.close()
    }
  }
}
