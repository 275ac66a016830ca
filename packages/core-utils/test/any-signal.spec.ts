import { getEventListeners } from 'node:events'
import { anySignal } from '../src/any-signal.js'

describe('anySignal', () => {
  it('aborts with the reason of the first input that aborts, and only then', () => {
    const a = new AbortController()
    const b = new AbortController()
    const any = anySignal([a.signal, undefined, b.signal])
    expect(any.signal.aborted).toBe(false)
    b.abort(new Error('b stopped'))
    a.abort(new Error('a stopped'))
    expect(any.signal.aborted).toBe(true)
    expect((any.signal.reason as Error).message).toBe('b stopped')
  })

  it('is aborted at once when an input already is', () => {
    const a = new AbortController()
    a.abort('gone')
    expect(anySignal([new AbortController().signal, a.signal]).signal.reason).toBe('gone')
  })

  it('leaves a long-lived input as it found it after many uses (bounded, unlike Node 20 AbortSignal.any)', () => {
    const lifetime = new AbortController()
    for (let i = 0; i < 1000; i++) {
      const any = anySignal([lifetime.signal, AbortSignal.timeout(60_000)])
      any.dispose()
      any.dispose()
    }
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0)
    const dependants = Object.getOwnPropertySymbols(lifetime.signal).find((s) => s.description === 'kDependantSignals')
    const set = dependants != null ? (lifetime.signal as unknown as Record<symbol, Set<unknown> | undefined>)[dependants] : undefined
    expect(set?.size ?? 0).toBe(0)
  })

  it('a disposed signal no longer follows its inputs', () => {
    const a = new AbortController()
    const any = anySignal([a.signal])
    any.dispose()
    a.abort()
    expect(any.signal.aborted).toBe(false)
  })
})
