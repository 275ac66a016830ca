import { ManagerClock } from '../src/manager-clock.js'

/** A node whose wall clock is `wallOffsetMs` off the manager's; both advance with `mono`. */
function clocks(wallOffsetMs: number) {
  let mono = 1_000
  const managerEpoch = 1_700_000_000_000
  const clock = new ManagerClock(
    () => mono,
    () => managerEpoch + mono + wallOffsetMs
  )
  return {
    clock,
    managerNow: () => managerEpoch + mono,
    advance: (ms: number) => {
      mono += ms
    },
    /** The node's wall clock is stepped (NTP, an operator); the monotonic clock is not. */
    stepWall: (ms: number) => {
      wallOffsetMs += ms
    }
  }
}

describe('ManagerClock', () => {
  it.each([0, 10_000, -10_000, 7_200_000])('relative durations ignore a node wall clock %i ms off', (offset) => {
    const c = clocks(offset)
    const deadline = c.clock.deadline({ absoluteMs: c.managerNow() + 3000, relativeMs: 3000 })!
    expect(c.clock.remainingMs(deadline)).toBe(3000)
    c.advance(2999)
    expect(c.clock.remainingMs(deadline)).toBe(1)
    // Both sent: the manager's now is known exactly from then on.
    expect(c.clock.skewMs()).toBe(0 - offset) // manager minus node (0 - x: toBe tells -0 from 0)
  })

  it.each([10_000, -10_000])(
    'absolute times only: the estimate from the registration lease (expires_at − ttl, its grant) follows the monotonic clock (%i ms skew)',
    (offset) => {
      const c = clocks(offset)
      // Registration from an older manager: Lease.expires_at and the lease length ttl, no lease_remaining.
      c.clock.observeGrant(c.managerNow() + 1500, 1500)
      expect(c.clock.managerNowOrWall()).toBe(c.managerNow())
      const first = c.clock.deadline({ absoluteMs: c.managerNow() + 1500 })!
      expect(c.clock.remainingMs(first)).toBe(1500)
      c.advance(400)
      // A later ack from an older manager: only lease_expires_at.
      const lease = c.clock.deadline({ absoluteMs: c.managerNow() + 1500 })!
      expect(c.clock.remainingMs(lease)).toBe(1500)
      // The node's wall clock jumps 2 h: nothing the manager set moves.
      c.stepWall(7_200_000)
      const next = c.clock.deadline({ absoluteMs: c.managerNow() + 1500 })!
      expect(c.clock.remainingMs(next)).toBe(1500)
    }
  )

  it('with no estimate and no duration, only the node wall clock is left (a manager sending neither)', () => {
    const c = clocks(5000)
    expect(c.clock.managerNowOrWall()).toBe(c.managerNow() + 5000)
    const d = c.clock.deadline({ absoluteMs: c.managerNow() + 3000 })!
    expect(c.clock.remainingMs(d)).toBe(-2000)
    expect(c.clock.deadline({})).toBeUndefined()
  })

  it('shows a deadline on the node wall clock', () => {
    const c = clocks(10_000)
    const d = c.clock.deadline({ relativeMs: 1000 })!
    expect(c.clock.toWall(d).getTime()).toBe(c.managerNow() + 10_000 + 1000)
  })
})
