import { DynamicComponentState, HealthState } from '@mycelium/core-interfaces'
import { componentHealth, componentInfo, componentStatus, restingState, type StatusEntry } from '../src/status-view.js'
import type { ComponentSpec, DesiredComponent } from '../src/planner.js'

const since = new Date(0)
const entry = (extra: Partial<StatusEntry> = {}): StatusEntry => ({
  name: 'm',
  state: DynamicComponentState.RUNNING,
  reason: '',
  since,
  restarts: 2,
  assignmentId: 'a-m',
  spec: { version: '2', digest: 'sha256:bb', onDemand: true },
  ...extra
})

describe('componentStatus', () => {
  it('reports the running process’s version and digest over the spec’s, with its pid and memory', () => {
    const s = componentStatus(entry({ proc: { record: { version: '1', digest: 'sha256:aa' } } }), { pid: 42, rssBytes: 1024 })
    expect(s).toEqual({
      name: 'm',
      version: '1',
      artifactDigest: 'sha256:aa',
      state: DynamicComponentState.RUNNING,
      restarts: 2,
      reason: '',
      rssBytes: 1024,
      assignmentId: 'a-m',
      pid: 42,
      onDemand: true
    })
  })

  it('falls back to the spec, and to empty values, with pid and memory 0 when nothing is alive', () => {
    expect(componentStatus(entry())).toMatchObject({ version: '2', artifactDigest: 'sha256:bb', pid: 0, rssBytes: 0 })
    expect(componentStatus(entry({ spec: undefined }))).toMatchObject({ version: '', artifactDigest: '', onDemand: false })
  })

  it('carries into capabilities without memory or pid', () => {
    const info = componentInfo(componentStatus(entry(), { pid: 1, rssBytes: 5 }))
    expect(info).toEqual({
      name: 'm',
      version: '2',
      artifactDigest: 'sha256:bb',
      state: DynamicComponentState.RUNNING,
      restarts: 2,
      reason: ''
    })
  })
})

describe('componentHealth', () => {
  it('is healthy when running or idle', () => {
    for (const state of [DynamicComponentState.RUNNING, DynamicComponentState.IDLE])
      expect(componentHealth(entry({ state }))).toEqual({ name: 'component:m', state: HealthState.HEALTHY, reason: '', since, restarts: 2 })
  })

  it('degrades (never fails) the node in any other state', () => {
    for (const state of [
      DynamicComponentState.FAILED,
      DynamicComponentState.BACKOFF,
      DynamicComponentState.UNHEALTHY,
      DynamicComponentState.STARTING,
      DynamicComponentState.INSTALLING
    ])
      expect(componentHealth(entry({ state, reason: 'why' }))).toMatchObject({ state: HealthState.DEGRADED, reason: 'why' })
  })
})

describe('restingState', () => {
  const spec = { onDemand: false } as ComponentSpec
  const want = (extra: Partial<DesiredComponent> = {}): DesiredComponent => ({
    name: 'm',
    assignmentId: 'a',
    run: true,
    parameters: {},
    spec,
    ...extra
  })
  const at = (extra: Partial<{ state: DynamicComponentState; running: boolean; blocked: boolean; wanted: boolean }> = {}) => ({
    state: DynamicComponentState.INSTALLING,
    running: false,
    blocked: false,
    wanted: false,
    ...extra
  })

  it('is IDLE for an assignment that wants it stopped', () => {
    expect(restingState(want({ run: false }), at())).toEqual({
      state: DynamicComponentState.IDLE,
      reason: 'assignment desired state is "stopped"'
    })
  })

  it('is IDLE for an on-demand component nobody uses', () => {
    const d = want({ spec: { onDemand: true } as ComponentSpec })
    expect(restingState(d, at())).toEqual({ state: DynamicComponentState.IDLE, reason: 'on-demand: not in use' })
    expect(restingState(d, at({ wanted: true }))).toBeUndefined()
  })

  it('leaves a running, blocked, already idle, unknown or refused component as it is', () => {
    const d = want({ run: false })
    expect(restingState(d, at({ running: true }))).toBeUndefined()
    expect(restingState(d, at({ blocked: true }))).toBeUndefined()
    expect(restingState(d, at({ state: DynamicComponentState.IDLE }))).toBeUndefined()
    expect(restingState(d, undefined)).toBeUndefined()
    expect(restingState(want({ run: false, spec: undefined, problem: 'no spore' }), at())).toBeUndefined()
  })

  it('leaves an assigned, always-on component that is not running to the runner', () => {
    expect(restingState(want(), at())).toBeUndefined()
  })
})
