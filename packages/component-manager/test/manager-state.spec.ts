import { Assignment } from '@mycelium/core-interfaces'
import { decodeManagerState, encodeManagerState, type ManagerStateData } from '../src/manager-state.js'
import type { ComponentSpec } from '../src/planner.js'

const spec = { name: 'm', version: '1', digest: 'sha256:aa' } as ComponentSpec

describe('manager state encoding', () => {
  it('round-trips generation, assignments, known specs, running records and pins', () => {
    const s: ManagerStateData = {
      generation: 7,
      assignments: [
        Assignment.fromPartial({ assignmentId: 'a1', componentSpore: 'component/m', desiredState: 'running', parameters: { k: 'v' } })
      ],
      known: { m: spec },
      running: {
        m: {
          name: 'm',
          digest: 'sha256:aa',
          version: '1',
          socket: '/r/m.sock',
          parametersKey: '[]',
          startedAtMs: 5,
          pid: 42,
          startTime: '99'
        }
      },
      pinned: { m: { spec: { ...spec, version: '2', digest: 'sha256:bb' }, base: 'sha256:aa' } }
    }
    expect(decodeManagerState(encodeManagerState(s))).toEqual(s)
  })

  it('reads a state file written before update pins existed as having none', () => {
    const old = Buffer.from(JSON.stringify({ generation: 1, assignments: [], known: {}, running: {} }))
    expect(decodeManagerState(old)).toEqual({ generation: 1, assignments: [], known: {}, running: {}, pinned: {} })
  })

  it('refuses bytes that are not JSON (start fails rather than dropping assignments)', () => {
    expect(() => decodeManagerState(Buffer.from('{'))).toThrow(SyntaxError)
  })
})
