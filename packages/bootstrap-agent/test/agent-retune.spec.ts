import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentityStore } from '@mycelium/basic-net'
import { createBootstrapAgent, type BootstrapAgentInit } from '../src/index.js'

/** node-core retunes a running agent with a new config's timings; the caller's init is never written. */
describe('agent retune', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-retune-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('takes the new timings on its own copy: a frozen (or shared) init object is left as it was', () => {
    const identity = createIdentityStore(
      {},
      { networkId: 'net1', name: 'n1', keyFile: join(dir, 'node.key'), certificateFile: join(dir, 'node.crt'), caFile: join(dir, 'ca.crt') }
    )
    const init: BootstrapAgentInit = Object.freeze({
      networkId: 'net1',
      nodeId: 'n1',
      stateDir: dir,
      configConfirmWindowMs: 30_000,
      reconnect: Object.freeze({ initialMs: 500, maxMs: 30_000, multiplier: 2 })
    })
    const agent = createBootstrapAgent(
      {
        identity,
        createSporeClient: () => {
          throw new Error('not used')
        }
      },
      init
    )
    agent.retune({ configConfirmWindowMs: 9000, reconnect: { initialMs: 1000, maxMs: 8000, multiplier: 3 } })
    expect((agent as unknown as { init: BootstrapAgentInit }).init).toMatchObject({
      configConfirmWindowMs: 9000,
      reconnect: { initialMs: 1000, maxMs: 8000, multiplier: 3 }
    })
    expect(init.configConfirmWindowMs).toBe(30_000)
    expect(init.reconnect).toEqual({ initialMs: 500, maxMs: 30_000, multiplier: 2 })
  })
})
