import { Assignment, ComponentBody } from '@mycelium/core-interfaces'
import { COMPONENT_CONTRACT_VERSION, desiredComponents, specOf } from '../src/desired.js'

const DIGEST = `sha256:${'ab'.repeat(32)}`
const body = (over: Partial<ComponentBody> = {}): ComponentBody =>
  ComponentBody.fromPartial({
    name: 'm',
    version: '1.0.0',
    artifactDigest: DIGEST,
    artifactUrls: ['https://a/x'],
    entry: 'index.cjs',
    ...over
  })
const limits = { artifactMaxBytes: 1000 }
const assign = (spore: string, desiredState = 'running'): Assignment =>
  Assignment.fromPartial({ assignmentId: `id-${spore}`, componentSpore: spore, desiredState, parameters: { k: 'v' } })

describe('specOf', () => {
  it('takes a well-formed body, contract version 0 meaning 1', () => {
    const s = specOf(body(), limits)
    expect(s).toMatchObject({ name: 'm', digest: DIGEST, entry: 'index.cjs', contractVersion: COMPONENT_CONTRACT_VERSION })
  })

  it.each([
    [{ artifactDigest: 'md5:00' }, 'artifact_digest'],
    [{ artifactUrls: ['http://plain/x'] }, 'artifact_urls has no https://'],
    [{ entry: '../../bin/sh' }, 'entry "../../bin/sh"'],
    [{ entry: '/bin/sh' }, 'entry "/bin/sh"'],
    [{ contractVersion: 2 }, 'contract_version 2 is not spoken here'],
    [{ artifactSizeBytes: 1001 }, "exceeds the node's artifact cap 1000"],
    [{ name: 'Bad Name' }, 'is not a component name']
  ])('refuses %j naming the field', (over, text) => {
    const s = specOf(body(over), limits)
    expect('problem' in s && s.problem).toContain(text)
  })
})

describe('desiredComponents', () => {
  it('resolves assignments against the verified catalogue', () => {
    const [d] = desiredComponents([assign('component/m')], [body()], {}, limits)
    expect(d).toMatchObject({ name: 'm', assignmentId: 'id-component/m', run: true, parameters: { k: 'v' }, spec: { digest: DIGEST } })
  })

  it('says why an assignment names no verified spore', () => {
    const [d] = desiredComponents([assign('component/ghost')], [body()], {}, limits)
    expect(d!.spec).toBeUndefined()
    expect(d!.problem).toBe('no verified spore "component/ghost" (unknown, unsigned or expired)')
  })

  it('keeps the spec last installed when the spore is gone (managers and spore sources lost)', () => {
    const last = specOf(body(), limits)
    const [d] = desiredComponents([assign('component/m')], [], { m: last as never }, limits)
    expect(d!.spec).toEqual(last)
  })

  it('refuses a spore name outside component/ and an unknown desired state', () => {
    const out = desiredComponents([assign('service/x'), assign('component/m', 'paused')], [body()], {}, limits)
    expect(out.map((d) => d.problem)).toEqual([
      'component_spore "service/x" does not start with "component/"',
      'desired_state "paused" is neither "running" nor "stopped"'
    ])
  })

  it('passes "stopped" through', () => {
    expect(desiredComponents([assign('component/m', 'stopped')], [body()], {}, limits)[0]!.run).toBe(false)
  })
})
