import { isNotStartedError } from '@mycelium/core-interfaces'
import { RetryingWriter, type RetryingWriterInit } from '../src/index.js'

/** A disk we steer: each attempt is recorded and waits for the test to let it land or fail. */
class FakeDisk<T> {
  readonly attempts: Array<{ value: T; atMs: number }> = []
  readonly landed: T[] = []
  /** Attempts answered at once: true lands, an Error fails; empty → the attempt waits for `answer`. */
  readonly script: Array<true | Error> = []
  private pending: Array<(outcome: true | Error) => void> = []

  readonly write = (value: T): Promise<void> => {
    this.attempts.push({ value, atMs: Date.now() })
    const settle = (outcome: true | Error): void => {
      if (outcome !== true) throw outcome
      this.landed.push(value)
    }
    const scripted = this.script.shift()
    if (scripted != null) return Promise.resolve().then(() => settle(scripted))
    return new Promise<true | Error>((resolve) => this.pending.push(resolve)).then(settle)
  }

  /** Answers the attempt that is waiting. */
  answer(outcome: true | Error): void {
    const next = this.pending.shift()
    if (next == null) throw new Error('no attempt is waiting')
    next(outcome)
  }
}

const full = (n = 1): Error => new Error(`disk full: /state/x.bin (${n})`)
/** Rejections the test looks at later must not count as unhandled meanwhile. */
const outcome = (p: Promise<void>): Promise<'written' | Error> =>
  p.then(
    () => 'written' as const,
    (err: Error) => err
  )

function writerOn<T>(disk: FakeDisk<T>, init: RetryingWriterInit<T> = {}) {
  const events: string[] = []
  const writer = new RetryingWriter<T>(
    { write: disk.write },
    {
      backoff: { initialMs: 100, maxMs: 400 },
      // The top of each jittered range, so the cap shows in the delays.
      random: () => 1 - 1e-9,
      onFailed: (err, value, previous) => events.push(`failed ${String(value)}: ${err.message}${previous != null ? ' (again)' : ''}`),
      onWritten: (value, previous) => events.push(`written ${String(value)}${previous != null ? ' (recovered)' : ''}`),
      ...init
    }
  )
  return { writer, events }
}

describe('RetryingWriter', () => {
  beforeEach(() => jest.useFakeTimers())
  afterEach(() => jest.useRealTimers())

  it('retries a failed write with capped, jittered backoff until it lands, reporting the failure until then', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(1), full(2), full(3), full(4), true)
    const { writer, events } = writerOn(disk)
    const first = outcome(writer.write('a'))
    expect(await first).toEqual(full(1)) // the caller hears of the first failure at once
    expect(writer.failure?.message).toBe(full(1).message)
    expect(writer.pending).toBe(true)
    await jest.advanceTimersByTimeAsync(5_000)
    expect(disk.landed).toEqual(['a'])
    expect(writer.failure).toBeUndefined()
    expect(writer.pending).toBe(false)
    const start = disk.attempts[0]!.atMs
    // Ceilings 100, 200, 400, then capped at 400 (maxMs); the jitter is the range's top here.
    expect(disk.attempts.map((a) => a.atMs - start)).toEqual([0, 99, 99 + 199, 99 + 199 + 399, 99 + 199 + 399 + 399])
    expect(events).toEqual([
      `failed a: ${full(1).message}`,
      `failed a: ${full(2).message} (again)`,
      `failed a: ${full(3).message} (again)`,
      `failed a: ${full(4).message} (again)`,
      'written a (recovered)'
    ])
    await expect(writer.flush()).resolves.toBeUndefined()
  })

  it('jitters: the delay is a random point of the range, never its top when the draw is low', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(), full(), true)
    const { writer } = writerOn(disk, { random: () => 0.25 })
    await outcome(writer.write('a'))
    await jest.advanceTimersByTimeAsync(1_000)
    const start = disk.attempts[0]!.atMs
    expect(disk.attempts.map((a) => a.atMs - start)).toEqual([0, 25, 25 + 50])
  })

  it('starts the backoff over after a write lands', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(), full(), true, full(), true)
    const { writer } = writerOn(disk)
    await outcome(writer.write('a'))
    await jest.advanceTimersByTimeAsync(1_000)
    expect(disk.landed).toEqual(['a'])
    const second = disk.attempts.length
    await outcome(writer.write('b'))
    await jest.advanceTimersByTimeAsync(1_000)
    expect(disk.landed).toEqual(['a', 'b'])
    expect(disk.attempts[second + 1]!.atMs - disk.attempts[second]!.atMs).toBe(99) // the first ceiling again
  })

  it('writes only the latest value: a newer one supersedes a pending one and its waiters resolve with it', async () => {
    const disk = new FakeDisk<string>()
    const { writer } = writerOn(disk)
    const a = outcome(writer.write('a'))
    // While the attempt of a runs, b and c come: one attempt after it, of c only.
    const b = outcome(writer.write('b'))
    const c = outcome(writer.write('c'))
    disk.answer(true)
    await a
    expect(disk.attempts.map((x) => x.value)).toEqual(['a', 'c'])
    disk.answer(true)
    expect([await b, await c]).toEqual(['written', 'written'])
    expect(disk.landed).toEqual(['a', 'c'])
  })

  it('a new value cuts a waiting backoff short (a disk that came back is used at once)', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(), true)
    const { writer, events } = writerOn(disk, { backoff: { initialMs: 60_000, maxMs: 60_000 } })
    await outcome(writer.write('old'))
    expect(await outcome(writer.write('new'))).toBe('written')
    expect(disk.attempts.map((x) => x.value)).toEqual(['old', 'new'])
    expect(events).toEqual([`failed old: ${full().message}`, 'written new (recovered)'])
    expect(jest.getTimerCount()).toBe(0) // the cut-short wait left no timer behind
  })

  it('a value handed in during a failing attempt gets its own attempt at once; then the backoff (one retry per value)', async () => {
    const disk = new FakeDisk<string>()
    const { writer } = writerOn(disk)
    const a = outcome(writer.write('a'))
    const b = outcome(writer.write('b'))
    disk.answer(full())
    expect(await a).toEqual(full())
    await jest.advanceTimersByTimeAsync(0)
    expect(disk.attempts.map((x) => x.value)).toEqual(['a', 'b'])
    disk.answer(full())
    expect(await b).toEqual(full())
    // b failed too, the second failure in a row: nothing new came, so the next try waits the backoff's second step.
    await jest.advanceTimersByTimeAsync(198)
    expect(disk.attempts).toHaveLength(2)
    await jest.advanceTimersByTimeAsync(1)
    expect(disk.attempts.map((x) => x.value)).toEqual(['a', 'b', 'b'])
    disk.answer(true)
    await writer.flush()
    expect(disk.landed).toEqual(['b'])
  })

  it('takes the value when the attempt starts: a lazy snapshot sees every change handed in before it', async () => {
    let state = 0
    const written: number[] = []
    let fail = true
    const writer = new RetryingWriter<void>(
      {
        write: async () => {
          const snapshot = state // taken synchronously when the attempt starts
          await Promise.resolve()
          if (fail) throw full()
          written.push(snapshot)
        }
      },
      { random: () => 0 }
    )
    state = 1
    await outcome(writer.write())
    state = 2
    fail = false
    await writer.write()
    expect(written).toEqual([2])
  })

  it('flush tries a pending value at once and settles with that attempt', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(1), full(2), true)
    const { writer } = writerOn(disk, { backoff: { initialMs: 60_000, maxMs: 60_000 } })
    await outcome(writer.write('a'))
    expect(await outcome(writer.flush())).toEqual(full(2))
    expect(await outcome(writer.flush())).toBe('written')
    expect(disk.attempts).toHaveLength(3)
    await expect(writer.flush()).resolves.toBeUndefined() // nothing pending: no attempt
    expect(disk.attempts).toHaveLength(3)
  })

  it('close() ends a waiting retry, abandons the pending value (NotStartedError) and leaves no timer', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full())
    const { writer } = writerOn(disk, { what: 'test file /state/x.bin' })
    await outcome(writer.write('a'))
    expect(jest.getTimerCount()).toBe(1)
    writer.close()
    writer.close() // idempotent
    expect(jest.getTimerCount()).toBe(0)
    await jest.advanceTimersByTimeAsync(60_000)
    expect(disk.attempts).toHaveLength(1)
    expect(writer.pending).toBe(false)
    const flushed = await outcome(writer.flush())
    expect(isNotStartedError(flushed)).toBe(true)
    expect((flushed as Error).message).toBe('test file /state/x.bin (closed before the write) is not started')
    // The failure stays visible: nothing landed.
    expect(writer.failure?.message).toBe(full().message)
  })

  it('close() rejects the callers waiting on a running attempt; the attempt finishes and is reported', async () => {
    const disk = new FakeDisk<string>()
    const { writer, events } = writerOn(disk)
    const a = outcome(writer.write('a'))
    writer.close()
    expect(isNotStartedError(await a)).toBe(true)
    disk.answer(true)
    await jest.advanceTimersByTimeAsync(0)
    expect(disk.landed).toEqual(['a'])
    expect(events).toEqual(['written a'])
  })

  it('after close() a value gets one attempt and is never retried', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(), true)
    const { writer } = writerOn(disk)
    writer.close()
    expect(await outcome(writer.write('a'))).toEqual(full())
    await jest.advanceTimersByTimeAsync(60_000)
    expect(disk.attempts).toHaveLength(1)
    expect(jest.getTimerCount()).toBe(0)
    expect(await outcome(writer.write('b'))).toBe('written')
    expect(disk.landed).toEqual(['b'])
  })

  it('a value written after close() while an older attempt runs still gets its one attempt, with its own outcome', async () => {
    const disk = new FakeDisk<string>()
    const { writer } = writerOn(disk)
    const a = outcome(writer.write('a'))
    writer.close()
    const b = outcome(writer.write('b'))
    expect(isNotStartedError(await a)).toBe(true) // abandoned by close(), its attempt still running
    disk.answer(full()) // a's attempt fails after close: no retry of a
    await jest.advanceTimersByTimeAsync(0)
    expect(disk.attempts.map((x) => x.value)).toEqual(['a', 'b'])
    disk.answer(true)
    expect(await b).toBe('written')
    expect(disk.landed).toEqual(['b'])
  })

  it('aborting the signal is close()', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full())
    const controller = new AbortController()
    const { writer } = writerOn(disk, { signal: controller.signal })
    await outcome(writer.write('a'))
    controller.abort()
    expect(jest.getTimerCount()).toBe(0)
    await jest.advanceTimersByTimeAsync(60_000)
    expect(disk.attempts).toHaveLength(1)
    expect(writer.pending).toBe(false)
    const aborted = new AbortController()
    aborted.abort()
    // A signal aborted before the writer was made: closed from the start (one attempt per value, no retry).
    const lateDisk = new FakeDisk<string>()
    lateDisk.script.push(full())
    const late = writerOn(lateDisk, { signal: aborted.signal }).writer
    expect(await outcome(late.write('x'))).toEqual(full())
    await jest.advanceTimersByTimeAsync(60_000)
    expect(lateDisk.attempts).toHaveLength(1)
  })

  it('a reporter that throws never ends the retries', async () => {
    const disk = new FakeDisk<string>()
    disk.script.push(full(), true)
    const { writer } = writerOn(disk, {
      onFailed: () => {
        throw new Error('reporter broke')
      }
    })
    await outcome(writer.write('a'))
    await jest.advanceTimersByTimeAsync(1_000)
    expect(disk.landed).toEqual(['a'])
  })

  it('a write function that throws synchronously or rejects with a non-Error is a failed attempt', async () => {
    let calls = 0
    const failures: Error[] = []
    const writer = new RetryingWriter<string>(
      {
        write: (() => {
          calls++
          if (calls === 1) throw new Error('sync')
          if (calls === 2) return Promise.reject('a string') // eslint-disable-line @typescript-eslint/prefer-promise-reject-errors
          return Promise.resolve()
        }) as (value: string) => Promise<void>
      },
      { random: () => 0, onFailed: (err) => failures.push(err) }
    )
    expect(await outcome(writer.write('a'))).toEqual(new Error('sync'))
    await jest.advanceTimersByTimeAsync(10)
    expect(failures).toEqual([new Error('sync'), new Error('a string')])
    expect(writer.failure).toBeUndefined()
    expect(calls).toBe(3)
  })
})
