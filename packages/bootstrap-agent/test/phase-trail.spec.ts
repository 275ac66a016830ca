import { Phase, type LogFields, type Logger, type PhaseTransition } from '@mycelium/core-interfaces'
import { INITIAL_STATE, type MachineState } from '../src/index.js'
import { PhaseTrail } from '../src/phase-trail.js'

type Line = { level: string; msg: string; fields: LogFields }

/** The trail with an in-memory history store and a logger that keeps every line (pure: no files). */
function trail(historySize?: number): { t: PhaseTrail; saved: PhaseTransition[][]; lines: Line[] } {
  const saved: PhaseTransition[][] = []
  const lines: Line[] = []
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}): void => {
      lines.push({ level, msg, fields })
    }
  const log: Logger = {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    forComponent: () => log,
    child: () => log
  }
  const store = {
    saveHistory: async (h: PhaseTransition[]) => {
      saved.push(h)
    }
  }
  return { t: new PhaseTrail(store, historySize != null ? { historySize } : {}, log), saved, lines }
}

describe('PhaseTrail (what the machine’s moves leave behind, pure)', () => {
  it('keeps the last historySize phase changes, saves each new history and counts changes by phase entered', () => {
    const { t, saved } = trail(2)
    t.transition(Phase.UNSPECIFIED, Phase.BOOTSTRAP, 'agent started')
    t.transition(Phase.BOOTSTRAP, Phase.DISCOVERY, 'identity valid')
    const last = t.transition(Phase.DISCOVERY, Phase.BOOTSTRAP, 'restarted')
    expect(last).toEqual({ from: Phase.DISCOVERY, to: Phase.BOOTSTRAP, reason: 'restarted', at: expect.any(Date) })
    expect(t.history.map((h) => h.reason)).toEqual(['identity valid', 'restarted'])
    expect(saved).toHaveLength(3)
    expect(saved[2]).toBe(t.history)
    expect(t.counters.transitions).toEqual({ BOOTSTRAP: 2, DISCOVERY: 1 })
  })

  it('warns on entering FALLBACK or RECOVERY (trouble) and informs otherwise', () => {
    const { t, lines } = trail()
    t.transition(Phase.MANAGED, Phase.FALLBACK, 'manager link lost')
    t.transition(Phase.FALLBACK, Phase.HANDOFF, 'registered')
    expect(lines.map((l) => [l.level, l.msg, l.fields.phase])).toEqual([
      ['warn', 'phase transition', 'FALLBACK'],
      ['info', 'phase transition', 'HANDOFF']
    ])
  })

  it('counts a step inside a phase without touching history; a failed attempt is a warning naming its error', () => {
    const { t, saved, lines } = trail()
    const before: MachineState = { ...INITIAL_STATE, phase: Phase.FALLBACK, step: 'waiting to reconnect', failures: 1, lastError: 'first' }
    const failed = { ...before, step: 'reconnecting', failures: 2, lastError: 'connection refused' }
    expect(t.step(before, failed)).toEqual({ phase: Phase.FALLBACK, step: 'reconnecting', lastError: 'connection refused' })
    t.step(failed, { ...failed, step: 'discovering' })
    expect(t.counters.steps).toBe(2)
    expect(t.history).toEqual([])
    expect(saved).toEqual([])
    expect(lines.map((l) => [l.level, l.msg, l.fields.error])).toEqual([
      ['warn', 'phase attempt failed', 'connection refused'],
      ['info', 'phase step', undefined]
    ])
  })
})
