import { until } from '@mycelium/testing'
import { DEFAULT_DAEMON_V8_FLAGS, daemonV8Flags, startIdleGc } from '../src/v8-flags.js'

describe('daemon V8 flags', () => {
  it('interprets only, prefers a small heap and drops bytecode not run for 2 collections by default', () => {
    expect(daemonV8Flags(DEFAULT_DAEMON_V8_FLAGS, [])).toEqual([
      '--no-opt',
      '--no-sparkplug',
      '--optimize-for-size',
      '--bytecode-old-age=2'
    ])
  })

  it("leaves an option node's own command line sets to that command line (either polarity, - or _)", () => {
    expect(daemonV8Flags(DEFAULT_DAEMON_V8_FLAGS, ['--opt', '--expose-gc', '--optimize_for_size', '--bytecode_old_age=5'])).toEqual([
      '--no-sparkplug'
    ])
    expect(daemonV8Flags(DEFAULT_DAEMON_V8_FLAGS, ['--no-sparkplug=true'])).toEqual([
      '--no-opt',
      '--optimize-for-size',
      '--bytecode-old-age=2'
    ])
  })
})

describe('the idle heap check', () => {
  it('collects garbage without node --expose-gc once the heap has grown', async () => {
    // Referenced only weakly from the start: garbage as soon as this job ends.
    const ref = new WeakRef(Array.from({ length: 50_000 }, (_, i) => ({ i })))
    const stop = startIdleGc(20, 0)
    try {
      await until('the dropped array collected', () => ref.deref() === undefined, 10_000)
    } finally {
      stop()
    }
  })
})
