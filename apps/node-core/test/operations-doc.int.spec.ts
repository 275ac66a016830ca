import { execFile } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { loadConfig, MyceliumNode } from '../src/index.js'

/**
 * docs/OPERATIONS.md stays true: its blocks marked `# checked: <name>` are
 * run here, against a real agent (the built CLI, a dev network), with
 * $CONFIG, $STATE and $PEER set; the alert rules parse and name only
 * metrics the agent serves.
 */
const DOC = resolve(__dirname, '../../../docs/OPERATIONS.md')
const BIN = resolve(__dirname, '../dist/bin.cjs')

function checkedBlocks(): Map<string, string> {
  const blocks = new Map<string, string>()
  for (const m of readFileSync(DOC, 'utf8').matchAll(/```(?:sh|yaml)\n# checked: (\S+)\n([\s\S]*?)```/g)) blocks.set(m[1]!, m[2]!)
  return blocks
}

describe('docs/OPERATIONS.md', () => {
  const blocks = checkedBlocks()
  let dir: string
  let net: DevNetwork
  let node: MyceliumNode
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build node-core first (the test target depends on build)`)
    dir = mkdtempSync(join(tmpdir(), 'nc-opsdoc-'))
    net = await startDevNetwork({ networkId: 'dev', dir: join(dir, 'net'), heartbeatIntervalMs: 1000 })
    const state = join(dir, 'state')
    const config = join(dir, 'node.yaml')
    writeFileSync(join(dir, 'join-token'), await net.newJoinToken(), { mode: 0o600 })
    writeFileSync(
      config,
      [
        'networkId: dev',
        'nodeId: doc-1',
        `stateDir: ${state}`,
        'identity:',
        `  joinTokenFile: ${join(dir, 'join-token')}`,
        '  enrollmentEndpoints:',
        `    - address: ${net.endpoints.enrollment}`,
        'discovery:',
        `  bootstrapFile: ${net.bootstrapFile}`,
        'peers:',
        '  listenAddress: 127.0.0.1:0',
        'status:',
        '  grpcListenAddress: 127.0.0.1:0',
        '  httpListenAddress: 127.0.0.1:0',
        ''
      ].join('\n')
    )
    node = new MyceliumNode(await loadConfig({ file: config, env: {} }), silentLogger(), {
      joinToken: readFileSync(join(dir, 'join-token'), 'utf8').trim()
    })
    const managed = new Promise<void>((ok) => node.agent.on('transition', (t) => t.to === Phase.MANAGED && ok()))
    await node.start()
    await managed
    const bin = join(dir, 'bin')
    mkdirSync(bin)
    writeFileSync(join(bin, 'node-core'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`)
    chmodSync(join(bin, 'node-core'), 0o755)
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, CONFIG: config, STATE: state, PEER: node.peers!.server.address }
  }, 60_000)

  afterAll(async () => {
    await node?.stop()
    await net?.stop()
    if (dir != null) rmSync(dir, { recursive: true, force: true })
  })

  const run = async (name: string): Promise<string> => {
    const block = blocks.get(name)
    expect([name, block != null]).toEqual([name, true])
    const { stdout, stderr } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', block!], { env, cwd: dir, encoding: 'utf8' })
    return stdout + stderr
  }

  it('has the checked blocks', () => {
    expect([...blocks.keys()].sort()).toEqual(['alerts', 'certificate', 'peers', 'status', 'validate'])
  })

  it('validate', async () => {
    expect(await run('validate')).toContain('valid (network dev, node doc-1)')
  })

  it('status --config finds the daemon', async () => {
    const out = await run('status')
    expect(out).toMatch(/^phase\s+[A-Z]+ since/m)
    expect(out).toContain(`http ${node.http.address}`)
    expect(out).toContain('"nodeId": "doc-1"')
  })

  it('verifies the node certificate and its SPIFFE URI with openssl', async () => {
    const out = await run('certificate')
    expect(out).toContain('node.crt: OK')
    expect(out).toContain('URI:spiffe://dev/node/doc-1')
    expect(out).toContain('Total found: 2')
  })

  it('pings a peer with the node identity', async () => {
    const out = await run('peers')
    expect(out).toContain('identity   spiffe://dev/node/doc-1')
    expect(out).toMatch(/^rtt\s+\d+\.\d ms/m)
  })

  it('the alert rules parse and use only metrics the agent serves', async () => {
    const rules = parseYaml(blocks.get('alerts')!) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr))
    expect(exprs.length).toBeGreaterThanOrEqual(3)
    const metrics = await (await fetch(`http://${node.http.address}/metrics`)).text()
    for (const name of exprs.flatMap((e) => e.match(/mycelium_[a-z_]+/g) ?? []))
      expect([name, metrics.includes(`\n${name}`)]).toEqual([name, true])
    expect(metrics).toMatch(/^mycelium_identity_expiry_timestamp_seconds \d+/m)
  })
})
