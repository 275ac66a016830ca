import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { extractRelease } from './helpers/release.js'

/**
 * The release artifact as an operator gets it (`npm run package`, extracted
 * into a temp dir with no node_modules), and what each command loads: `--help`,
 * `status` and `config validate` must not load the agent, winston, prom-client
 * or the gRPC servers (checked by recording module loads, not by timing).
 */

const DIST_BIN = join(__dirname, '..', 'dist', 'bin.cjs')
const RECORDER = join(__dirname, 'fixtures', 'record-loads.cjs')
const EXAMPLE = join(__dirname, '..', 'node.example.yaml')

function run(
  bin: string,
  args: string[],
  preload: string[] = [],
  env: NodeJS.ProcessEnv = {}
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...preload, bin, ...args], {
      cwd: tmpdir(),
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('exit', (code) => resolve({ code, out }))
  })
}

/** The packages (node_modules/<pkg> or the workspace packages/<pkg>) and built-ins a command loaded. */
async function loads(bin: string, args: string[]): Promise<{ code: number | null; packages: string[]; builtins: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'node-core-loads-'))
  try {
    const file = join(dir, 'loads.json')
    const { code } = await run(bin, args, ['-r', RECORDER], { RECORD_LOADS_OUT: file })
    const { files, builtins } = JSON.parse(readFileSync(file, 'utf8')) as { files: string[]; builtins: string[] }
    const pkg = (f: string): string | undefined =>
      /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1] ?? /\/(?:packages|tools)\/([^/]+)\//.exec(f)?.[1]
    return {
      code,
      packages: [...new Set(files.map(pkg).filter((p): p is string => p != null))].sort(),
      builtins: builtins.filter((b) => b.startsWith('NativeModule ')).map((b) => b.slice('NativeModule '.length))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** What the light commands must never load: the agent and its servers, the log transport, metrics. */
const HEAVY = [
  'bootstrap-agent',
  'spore-client',
  'basic-net',
  'winston',
  'prom-client',
  '@grpc/reflection',
  'grpc-health-check',
  '@grpc/proto-loader',
  'dev-network'
]

describe('the release artifact', () => {
  const root = extractRelease()

  it('holds the launcher, the bundle and its code cache, the Kubernetes chunk, the protos, the unit, a sample config and checksums — and nothing else', () => {
    expect(readdirSync(root).sort()).toEqual(
      [
        'SHA256SUMS',
        'chunks',
        'kubernetes-client.mjs',
        'mycelium-node.service',
        'node-core-main.cjs',
        'node-core-main.cjs.cache',
        'node-core-help.txt',
        'node-core.cjs',
        'node.example.yaml',
        'protos',
        'slot-launcher.cjs',
        'vendor'
      ].sort()
    )
    // Code an idle node never runs, each loaded on first use (package.mjs LAZY_CHUNKS; yaml only while a config is read).
    expect(readdirSync(join(root, 'chunks')).sort()).toEqual(['metrics.cjs', 'reflection.cjs', 'tar.cjs', 'x509.cjs', 'yaml.cjs'])
    expect(existsSync(join(root, 'protos', 'mycelium', 'core', 'v1', 'node_status.proto'))).toBe(true)
    expect(existsSync(join(root, 'vendor', 'grpc-health-check', 'proto', 'health', 'v1', 'health.proto'))).toBe(true)
    // sha256sum -c: every listed file is there and intact.
    expect(execFileSync('sha256sum', ['--check', '--strict', 'SHA256SUMS'], { cwd: root }).toString()).toContain('node-core-main.cjs: OK')
  })

  it('does not ship the dev network (certificate issuing)', () => {
    const bundle = readFileSync(join(root, 'node-core-main.cjs'), 'utf8')
    // (no `toContain`: a failure would print 2.3 MB) A DevNetwork method, and the certificate authority's class.
    expect(['nodeConfigYaml', 'CertificateAuthority'].filter((name) => bundle.includes(name))).toEqual([])
  })

  it('`dev` says in one line how to get the dev network, and exits 1', async () => {
    const { code, out } = await run(join(root, 'node-core.cjs'), ['dev'])
    expect(code).toBe(1)
    expect(out.trim().split('\n')).toEqual([expect.stringMatching(/^error: `node-core dev` needs @mycelium\/dev-network.*npm start/)])
  })

  it('validates the sample config it ships', async () => {
    const { code, out } = await run(join(root, 'node-core.cjs'), ['config', 'validate', join(root, 'node.example.yaml')])
    expect([code, out]).toEqual([0, expect.stringContaining('node.example.yaml: valid')])
  })

  it("`--help` prints the CLI's own help without compiling the bundle", async () => {
    const l = await loads(join(root, 'node-core.cjs'), ['--help'])
    expect(l.code).toBe(0)
    expect(l.packages).toEqual([]) // every dependency is inlined
    expect(l.builtins).not.toContain('http2')
    expect(l.builtins).not.toContain('vm') // the launcher answered from node-core-help.txt
    // The same bytes the CLI itself prints (dist/bin.cjs, not a terminal): one source of the text.
    const [fast, cli] = await Promise.all([run(join(root, 'node-core.cjs'), ['--help']), run(DIST_BIN, ['--help'])])
    expect(fast).toEqual({ code: 0, out: cli.out })
    expect(fast.out).toMatch(/^Usage: node-core /)
  })

  it('any other help (`run --help`) comes from the bundle, loading neither gRPC (http2) nor the agent', async () => {
    const l = await loads(join(root, 'node-core.cjs'), ['run', '--help'])
    expect(l.code).toBe(0)
    expect(l.packages).toEqual([])
    expect(l.builtins).not.toContain('http2')
    expect(l.builtins).toContain('vm') // the recorder sees the launcher's loads
  })
})

describe('what each command loads (dist/bin.cjs with node_modules, so each package is seen)', () => {
  it('`--help` loads commander only', async () => {
    const l = await loads(DIST_BIN, ['--help'])
    expect([l.code, l.packages]).toEqual([0, ['commander']])
  })

  it('`config validate` loads the config parser, not the agent, winston, prom-client or the servers', async () => {
    const l = await loads(DIST_BIN, ['config', 'validate', EXAMPLE])
    expect(l.code).toBe(0)
    expect(l.packages).toEqual(expect.arrayContaining(['yaml', 'core-interfaces']))
    expect(l.packages.filter((p) => HEAVY.includes(p))).toEqual([])
  })

  it('`status` loads the gRPC client, not the agent, winston, prom-client or the servers', async () => {
    const l = await loads(DIST_BIN, ['status', '--socket', join(tmpdir(), 'node-core-no-such.sock')])
    expect(l.code).toBe(3)
    expect(l.packages).toContain('@grpc/grpc-js')
    expect(l.packages.filter((p) => HEAVY.includes(p))).toEqual([])
  })

  it('`run` loads the agent (the recorder sees what the light commands do not), but not prom-client before the first scrape', async () => {
    // An unreadable join-token file is refused after the modules load and before anything is written.
    const l = await loads(DIST_BIN, ['run', '--config', EXAMPLE, '--join-token-file', join(tmpdir(), 'node-core-no-such-token')])
    expect(l.code).toBe(2)
    expect(l.packages).toEqual(expect.arrayContaining(['bootstrap-agent', 'winston']))
    // Metrics load on the first /metrics scrape (memory at rest); they are computed from the agent's counters then.
    expect(l.packages).not.toContain('prom-client')
  })
})
