import { applyPins, observedComponents, type ObservableEntry, type Pin } from '../src/reconcile-inputs.js'
import type { ComponentSpec, DesiredComponent } from '../src/planner.js'

const spec = (digest: string, version = '1'): ComponentSpec => ({ name: 'm', version, digest, onDemand: false }) as ComponentSpec
const want = (name: string, s?: ComponentSpec): DesiredComponent => ({
  name,
  assignmentId: `a-${name}`,
  run: true,
  parameters: {},
  ...(s != null ? { spec: s } : { problem: 'no spore' })
})

describe('applyPins', () => {
  const pinned: Record<string, Pin> = { m: { spec: spec('sha256:up', '2'), base: 'sha256:spore' } }

  it('puts an update command’s version in place of the spore’s while the spore names the same bytes', () => {
    const out = applyPins([want('m', spec('sha256:spore'))], pinned)
    expect(out.desired[0]!.spec).toEqual(spec('sha256:up', '2'))
    expect(out.pinned).toEqual(pinned)
  })

  it('drops the pin once the spore names other bytes (a newer release)', () => {
    const out = applyPins([want('m', spec('sha256:newer'))], pinned)
    expect(out.desired[0]!.spec!.digest).toBe('sha256:newer')
    expect(out.pinned).toEqual({})
    expect(pinned.m).toBeDefined()
  })

  it('keeps the pin of a component refused for now, or no longer desired', () => {
    expect(applyPins([want('m')], pinned).pinned).toEqual(pinned)
    expect(applyPins([], pinned).pinned).toEqual(pinned)
  })
})

describe('observedComponents', () => {
  const e = (extra: Partial<ObservableEntry> = {}): ObservableEntry => ({ name: 'm', wanted: false, ...extra })

  it('says installed by the desired spec’s digest, else the entry’s', () => {
    expect(observedComponents([e({ spec: spec('sha256:old') })], ['sha256:old'], [want('m', spec('sha256:new'))])[0]!.installed).toEqual([])
    expect(observedComponents([e({ spec: spec('sha256:old') })], ['sha256:new'], [want('m', spec('sha256:new'))])[0]!.installed).toEqual([
      'sha256:new'
    ])
    expect(observedComponents([e({ spec: spec('sha256:old') })], ['sha256:old'], [want('m')])[0]!.installed).toEqual(['sha256:old'])
    expect(observedComponents([e()], ['sha256:old'], [])[0]!.installed).toEqual([])
  })

  it('carries the running process, the block and use', () => {
    const [o] = observedComponents(
      [
        e({
          proc: { record: { digest: 'sha256:a', parametersKey: '[]' } },
          blocked: { digest: 'sha256:b', reason: 'backoff' },
          wanted: true
        })
      ],
      [],
      []
    )
    expect(o).toEqual({
      name: 'm',
      installed: [],
      running: { digest: 'sha256:a', parametersKey: '[]' },
      blocked: { digest: 'sha256:b', reason: 'backoff' },
      inUse: true
    })
  })

  it('leaves out running and blocked when there are none', () => {
    expect(observedComponents([e()], [], [])).toEqual([{ name: 'm', installed: [], inUse: false }])
  })
})
