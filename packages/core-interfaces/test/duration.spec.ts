import { findTimerDurationProblem, MAX_TIMER_MS, NodeConfig, timerDurationProblem } from '../src/index.js'

describe('timer-bounded durations', () => {
  it('accepts 0 to 2^31-1 ms and refuses longer, negative or non-finite ones', () => {
    expect(timerDurationProblem({ seconds: 0, nanos: 0 })).toBeUndefined()
    expect(timerDurationProblem({ seconds: Math.floor(MAX_TIMER_MS / 1000), nanos: (MAX_TIMER_MS % 1000) * 1e6 })).toBeUndefined()
    expect(timerDurationProblem({ seconds: 720 * 3600, nanos: 0 })).toMatch(/longer than 2147483647 ms/)
    expect(timerDurationProblem({ seconds: -1, nanos: 0 })).toMatch(/negative/)
    expect(timerDurationProblem({ seconds: Number.NaN, nanos: 0 })).toMatch(/not a finite/)
  })

  it('finds the first bad duration in a NodeConfig, with its path', () => {
    const config = NodeConfig.fromPartial({
      networkId: 'n',
      discovery: { refreshInterval: { seconds: 720 * 3600, nanos: 0 } },
      reconnect: { initial: { seconds: 1, nanos: 0 } }
    })
    expect(findTimerDurationProblem(config)).toMatch(/^discovery.refreshInterval is 2592000000 ms/)
    expect(findTimerDurationProblem(NodeConfig.fromPartial({ reconnect: { initial: { seconds: 1, nanos: 0 } } }))).toBeUndefined()
  })
})
