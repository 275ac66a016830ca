import { planComponents, type ComponentSpec, type DesiredComponent, type ObservedComponent } from '../src/planner.js'

const spec = (name: string, digest = 'sha256:aa', extra: Partial<ComponentSpec> = {}): ComponentSpec => ({
  name,
  version: '1',
  digest,
  urls: ['https://x/a'],
  entry: 'index.cjs',
  args: [],
  sizeBytes: 0,
  contractVersion: 1,
  memoryLimitBytes: 0,
  cpuMillis: 0,
  heapLimitMb: 0,
  onDemand: false,
  idleTimeoutMs: 0,
  ...extra
})
const want = (name: string, s?: ComponentSpec, extra: Partial<DesiredComponent> = {}): DesiredComponent => ({
  name,
  assignmentId: `a-${name}`,
  run: true,
  parameters: {},
  ...(s != null ? { spec: s } : { problem: 'no spore' }),
  ...extra
})
const types = (steps: Array<{ type: string; name: string }>): string[] => steps.map((s) => `${s.type} ${s.name}`)
const running = (digest: string, parametersKey = '[]'): ObservedComponent['running'] => ({ digest, parametersKey })

describe('planComponents', () => {
  it('installs then starts a newly assigned component', () => {
    expect(types(planComponents([], [want('m', spec('m'))]))).toEqual(['install m', 'start m'])
  })

  it('starts an installed component without fetching it again', () => {
    expect(types(planComponents([{ name: 'm', installed: ['sha256:aa'] }], [want('m', spec('m'))]))).toEqual(['start m'])
  })

  it('does nothing for a component running the assigned version with the same parameters', () => {
    expect(planComponents([{ name: 'm', installed: ['sha256:aa'], running: running('sha256:aa') }], [want('m', spec('m'))])).toEqual([])
  })

  it('stops and removes what is no longer assigned, before installing anything new', () => {
    const steps = planComponents([{ name: 'old', installed: ['sha256:bb'], running: running('sha256:bb') }], [want('new', spec('new'))])
    expect(types(steps)).toEqual(['stop old', 'remove old', 'install new', 'start new'])
  })

  it('removes an unassigned component that does not run without stopping it', () => {
    expect(types(planComponents([{ name: 'old', installed: ['sha256:bb'] }], []))).toEqual(['remove old'])
  })

  it('stops a component whose assignment says "stopped" and keeps it installed', () => {
    const steps = planComponents(
      [{ name: 'm', installed: ['sha256:aa'], running: running('sha256:aa') }],
      [want('m', spec('m'), { run: false })]
    )
    expect(types(steps)).toEqual(['stop m'])
  })

  it('upgrades a running component to a new digest (the runner keeps the old install until the new is healthy)', () => {
    const steps = planComponents(
      [{ name: 'm', installed: ['sha256:aa'], running: running('sha256:aa') }],
      [want('m', spec('m', 'sha256:cc'))]
    )
    expect(steps).toEqual([
      { type: 'install', name: 'm', spec: spec('m', 'sha256:cc') },
      { type: 'upgrade', name: 'm', from: 'sha256:aa', spec: spec('m', 'sha256:cc'), parameters: {} }
    ])
  })

  it('restarts a component whose parameters changed', () => {
    const steps = planComponents(
      [{ name: 'm', installed: ['sha256:aa'], running: running('sha256:aa') }],
      [want('m', spec('m'), { parameters: { listen: ':9101' } })]
    )
    expect(types(steps)).toEqual(['restart m'])
  })

  it('refuses an assignment without a usable spore and leaves what runs alone', () => {
    const steps = planComponents(
      [{ name: 'm', installed: ['sha256:aa'], running: running('sha256:aa') }],
      [want('m', undefined, { problem: 'no verified spore "component/m"' })]
    )
    expect(steps).toEqual([{ type: 'refuse', name: 'm', reason: 'no verified spore "component/m"' }])
  })

  it('neither installs nor starts a blocked digest, but does a new one', () => {
    const blocked = { name: 'm', installed: [], blocked: { digest: 'sha256:aa', reason: 'digest mismatch' } }
    expect(planComponents([blocked], [want('m', spec('m'))])).toEqual([])
    expect(types(planComponents([blocked], [want('m', spec('m', 'sha256:dd'))]))).toEqual(['install m', 'start m'])
  })

  it('installs an on-demand component at assignment, starts it only in use, and stops it when idle', () => {
    const od = spec('od', 'sha256:aa', { onDemand: true })
    expect(types(planComponents([], [want('od', od)]))).toEqual(['install od'])
    expect(planComponents([{ name: 'od', installed: ['sha256:aa'] }], [want('od', od)])).toEqual([])
    expect(types(planComponents([{ name: 'od', installed: ['sha256:aa'], inUse: true }], [want('od', od)]))).toEqual(['start od'])
    const idle = planComponents([{ name: 'od', installed: ['sha256:aa'], running: running('sha256:aa'), inUse: false }], [want('od', od)])
    expect(idle).toEqual([{ type: 'stop', name: 'od', reason: 'on-demand component idle' }])
  })

  it('touches only the component that changed', () => {
    const observed: ObservedComponent[] = [
      { name: 'a', installed: ['sha256:aa'], running: running('sha256:aa') },
      { name: 'b', installed: ['sha256:bb'], running: running('sha256:bb') }
    ]
    const steps = planComponents(observed, [want('a', spec('a')), want('b', spec('b', 'sha256:b2'))])
    expect(steps.every((s) => s.name === 'b')).toBe(true)
  })
})
