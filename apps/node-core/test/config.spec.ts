import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BackoffConfig,
  DiscoveryConfig,
  HandoffConfig,
  IdentityConfig,
  isInvalidConfigError,
  K3sConfig,
  K3sRole,
  LoggingConfig,
  NodeConfig,
  PeerConfig,
  StatusConfig
} from '@mycelium/core-interfaces'
import { loadConfig, NODE_CONFIG_SCHEMA, runCli, type Schema } from '../src/index.js'

const EXAMPLE = `# a node of net1
network_id: net1
nodeId: edge-7
stateDir: /var/lib/mycelium
labels: { zone: a }
identity:
  join_token_file: /etc/mycelium/join-token
  enrollmentEndpoints:
    - address: 10.0.0.1:7443
handoff:
  commitDeadline: 10s
  configConfirmWindow: 1.5s
reconnect:
  initial: 250ms
  max: 2m
k3s:
  enabled: true
  role: agent
  serverUrl: https://10.0.0.1:6443
  tokenFile: /etc/mycelium/k3s-token
status:
  readyInFallback: false
`

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'node-core-config-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const write = (text: string): string => {
  const f = join(dir, 'node.yaml')
  writeFileSync(f, text)
  return f
}

async function failure(text: string, env: NodeJS.ProcessEnv = {}, sets: string[] = []): Promise<string> {
  try {
    await loadConfig({ file: write(text), env, sets })
  } catch (err) {
    expect(isInvalidConfigError(err)).toBe(true)
    return (err as Error).message
  }
  throw new Error('expected an error')
}

describe('config loader', () => {
  it('the schema covers exactly the fields of the generated NodeConfig messages', () => {
    const keys = (s: Schema): string[] => Object.keys(s).sort()
    const sub = (k: string): Schema => NODE_CONFIG_SCHEMA[k] as Schema
    expect(keys(NODE_CONFIG_SCHEMA)).toEqual(Object.keys(NodeConfig.fromPartial({})).sort())
    const pairs: Array<[string, { fromPartial(o: object): object }]> = [
      ['identity', IdentityConfig],
      ['discovery', DiscoveryConfig],
      ['peers', PeerConfig],
      ['handoff', HandoffConfig],
      ['reconnect', BackoffConfig],
      ['k3s', K3sConfig],
      ['status', StatusConfig],
      ['logging', LoggingConfig]
    ]
    for (const [field, type] of pairs) expect([field, keys(sub(field))]).toEqual([field, Object.keys(type.fromPartial({})).sort()])
  })

  it('reads a YAML file with snake_case or camelCase keys, durations and enums', async () => {
    const c = await loadConfig({ file: write(EXAMPLE) })
    expect(c).toMatchObject({ networkId: 'net1', nodeId: 'edge-7', labels: { zone: 'a' } })
    expect(c.handoff?.configConfirmWindow).toEqual({ seconds: 1, nanos: 500_000_000 })
    expect(c.reconnect?.max).toEqual({ seconds: 120, nanos: 0 })
    expect(c.k3s?.role).toBe(K3sRole.AGENT)
    expect(c.status?.readyInFallback).toBe(false)
    expect(c.identity?.enrollmentEndpoints?.[0]?.address).toBe('10.0.0.1:7443')
    expect(Object.isFrozen(c)).toBe(true)
  })

  it('names the file, line and key of an unknown key', async () => {
    expect(await failure(EXAMPLE.replace('  commitDeadline: 10s', '  commitDeadlin: 10s'))).toBe(
      `${join(dir, 'node.yaml')}:11 handoff.commitDeadlin: unknown key "commitDeadlin" (expected one of: commitDeadline, configConfirmWindow, defaultHeartbeatInterval, missedAcksBeforeFallback)`
    )
  })

  it.each([
    ['a bad duration', EXAMPLE.replace('initial: 250ms', 'initial: soon'), ':14 reconnect.initial: "soon" is not a duration'],
    ['a bad boolean', EXAMPLE.replace('enabled: true', 'enabled: yes please'), ':17 k3s.enabled: must be true or false'],
    ['a bad role', EXAMPLE.replace('role: agent', 'role: boss'), ':18 k3s.role: must be "server" or "agent"'],
    ['a list where a mapping belongs', EXAMPLE.replace('labels: { zone: a }', 'labels: [a]'), ':5 labels: must be a mapping of strings'],
    ['broken YAML', 'nodeId: [unclosed', ':1']
  ])('rejects %s naming where', async (_what, text, where) => {
    expect(await failure(text)).toContain(where)
  })

  it('applies MYCELIUM_* variables and --set flags over the file, and names a bad one', async () => {
    const c = await loadConfig({
      file: write(EXAMPLE),
      env: { MYCELIUM_NODE_ID: 'edge-8', MYCELIUM_LOGGING__LEVEL: 'debug', PATH: '/bin' },
      sets: ['handoff.commitDeadline=3s', 'labels.zone=b']
    })
    expect(c.nodeId).toBe('edge-8')
    expect(c.logging?.level).toBe('debug')
    expect(c.handoff?.commitDeadline).toEqual({ seconds: 3, nanos: 0 })
    expect(c.handoff?.configConfirmWindow).toEqual({ seconds: 1, nanos: 500_000_000 }) // merged, not replaced
    expect(await failure(EXAMPLE, { MYCELIUM_NODE_IDD: 'x' })).toContain('environment MYCELIUM_NODE_IDD: "nodeIdd" is not a config key')
    expect(await failure(EXAMPLE, {}, ['handoff.commitDeadline=fast'])).toContain('--set handoff.commitDeadline: "fast" is not a duration')
  })

  it.each([
    [
      'an agent without a server',
      EXAMPLE.replace('  serverUrl: https://10.0.0.1:6443\n', ''),
      'k3s.serverUrl: is required when role is agent'
    ],
    ['a plain-http server', EXAMPLE.replace('https://10.0.0.1:6443', 'http://10.0.0.1:6443'), 'k3s.serverUrl: must be an https:// URL'],
    [
      'an unknown flannel backend',
      EXAMPLE.replace('  role: agent\n', '  role: server\n  flannelBackend: wireguard\n'),
      'k3s.flannelBackend: "wireguard" is not one of vxlan, host-gw, wireguard-native, none'
    ],
    [
      'CNI dirs without a custom CNI',
      EXAMPLE.replace('  role: agent\n', '  role: agent\n  cniConfDir: /etc/cni/net.d\n'),
      'k3s.cniConfDir: only applies with flannelBackend: none'
    ],
    [
      'an unknown component',
      EXAMPLE.replace('  role: agent\n', '  role: agent\n  enableComponents: [traefk]\n'),
      'k3s.enableComponents: unknown component "traefk"'
    ],
    [
      'a relative data dir',
      EXAMPLE.replace('  role: agent\n', '  role: agent\n  dataDir: data/k3s\n'),
      'k3s.dataDir: must be an absolute path'
    ],
    [
      'an invalid node label',
      EXAMPLE.replace('  role: agent\n', '  role: agent\n  nodeLabels: { "zone a": x }\n'),
      'k3s.nodeLabels.zone a: key "zone a" is not a label key'
    ]
  ])('rejects a K3s config K3s would refuse: %s', async (_what, text, message) => {
    expect(await failure(text)).toMatch(new RegExp(`^${join(dir, 'node.yaml')}(:\\d+)? `))
    expect(await failure(text)).toContain(message)
  })

  it('requires a network and a node id', async () => {
    expect(await failure('stateDir: /tmp/x\n')).toContain('networkId: is required')
  })

  it('node-core config validate: exit 0 for a good file, 2 with the reason for a bad one', async () => {
    const out: string[] = []
    const io = {
      out: (t: string) => void out.push(t),
      err: (t: string) => void out.push(t),
      env: {},
      untilStopped: () => Promise.resolve()
    }
    expect(await runCli(['config', 'validate', write(EXAMPLE)], io)).toBe(0)
    expect(out.join('')).toContain('valid (network net1, node edge-7)')
    expect(await runCli(['config', 'validate', write('nodeId: 5\nnetworkId: n\n')], io)).toBe(2)
    expect(out.join('')).toContain(':1 nodeId: must be a string')
  })
})

describe('the shipped example config', () => {
  it('validates', async () => {
    const c = await loadConfig({ file: join(__dirname, '..', 'node.example.yaml') })
    expect(c.nodeId).toBe('edge-7')
  })
})
