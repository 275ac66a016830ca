import { mkdtempSync, rmSync } from 'node:fs'
import { Writable } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeConfig, Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { createLogger, MyceliumNode } from '../src/index.js'
import { attachDevView } from '../src/dev-view.js'

/**
 * A start with a peer listener and no seeds is quiet: no "spore source
 * failed … no peers known" (with a stack) at every poll. And the terminal
 * view `node-core dev` prints: one readable line per change of what a
 * person watches.
 */
describe('a quiet start and the dev view', () => {
  let dir: string
  let net: DevNetwork
  let node: MyceliumNode
  const lines: Array<Record<string, unknown>> = []
  const view: string[] = []
  let detach: () => void = () => undefined

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-noise-'))
    net = await startDevNetwork({ networkId: 'dev', heartbeatIntervalMs: 200 })
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
        done()
      }
    })
    node = new MyceliumNode(
      NodeConfig.fromPartial({
        networkId: 'dev',
        nodeId: 'quiet-1',
        stateDir: join(dir, 'state'),
        identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
        discovery: { bootstrapFile: net.bootstrapFile },
        peers: { listenAddress: '127.0.0.1:0' },
        status: { socketPath: 'off', httpListenAddress: 'off' }
      }),
      createLogger({ level: 'debug', format: 'json', stream }),
      { joinToken: await net.newJoinToken() }
    )
    detach = attachDevView([node], (t) => void view.push(t))
    const managed = new Promise<void>((resolve) => node.agent.on('transition', (t) => t.to === Phase.MANAGED && resolve()))
    await node.start()
    await managed
    // The peer source is asked at the spore client's first refresh, long done by MANAGED; once more now.
    await node.agent.sporeClient?.refresh()
  }, 60_000)

  afterAll(async () => {
    detach()
    await node?.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('logs no failed peer source when there are no peers', () => {
    expect(lines.length).toBeGreaterThan(0)
    expect(lines.filter((l) => l.message === 'spore source failed')).toEqual([])
    expect(lines.filter((l) => l.level === 'warn' && JSON.stringify(l).includes('"stack"'))).toEqual([])
  })

  it('the view printed one line per change, ending MANAGED', () => {
    expect(view.length).toBeGreaterThan(1)
    expect(new Set(view).size).toBe(view.length)
    for (const line of view)
      expect(line).toMatch(
        /^\d\d:\d\d:\d\d {2}quiet-1 {2}[A-Z]+ {2}\(.*\) {2}health [A-Z]+ {2}managers .* {2}peers \d+\/\d+ {2}config v\d+\n$/
      )
    expect(view.some((l) => / {2}MANAGED {2}/.test(l))).toBe(true)
  })
})
