import { DynamicComponentState, silentLogger } from '@mycelium/core-interfaces'
import { ComponentTable } from '../src/component-table.js'

const table = (): { t: ComponentTable; changes: () => number } => {
  let n = 0
  const t = new ComponentTable(
    { log: silentLogger(), changed: () => n++ },
    { restartBackoff: { initialMs: 100, maxMs: 1_000, multiplier: 2 }, random: () => 0.5 }
  )
  return { t, changes: () => n }
}

describe('ComponentTable', () => {
  it('creates one entry per name, UNSPECIFIED and not wanted, and hands the same one back', () => {
    const { t } = table()
    const e = t.entry('m')
    expect(e).toMatchObject({ name: 'm', state: DynamicComponentState.UNSPECIFIED, reason: '', restarts: 0, crashes: [], wanted: false })
    expect(t.entry('m')).toBe(e)
    expect(t.get('m')).toBe(e)
    expect(t.get('other')).toBeUndefined()
    t.delete('m')
    expect([...t.values()]).toEqual([])
  })

  it('reports a state change once, with a new since; the same state and reason again is no change', () => {
    const { t, changes } = table()
    const e = t.entry('m')
    const before = e.since
    t.setState(e, DynamicComponentState.FAILED, 'install failed: x')
    expect(e).toMatchObject({ state: DynamicComponentState.FAILED, reason: 'install failed: x' })
    expect(e.since).not.toBe(before)
    const since = e.since
    t.setState(e, DynamicComponentState.FAILED, 'install failed: x')
    expect(changes()).toBe(1)
    expect(e.since).toBe(since)
    t.setState(e, DynamicComponentState.FAILED, 'install failed: y')
    expect(changes()).toBe(2)
  })

  it('gives each entry its own restart backoff from the table’s options', () => {
    const { t } = table()
    const a = t.entry('a')
    const b = t.entry('b')
    expect(a.backoff).not.toBe(b.backoff)
    expect(a.backoff.next()).toBeLessThanOrEqual(100)
  })
})
