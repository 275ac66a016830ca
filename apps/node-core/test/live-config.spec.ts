import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isInvalidConfigError, K3sRole, NodeConfig } from '@mycelium/core-interfaces'
import { ownerOf } from '@mycelium/bootstrap-agent'
import {
  CONFIG_CONSUMERS,
  NODE_CONFIG_SCHEMA,
  planReconfiguration,
  validateAgainstLocal,
  validateManagedValues,
  type Kind,
  type Schema
} from '../src/index.js'

/** Every key of the loader's schema (held equal to the generated NodeConfig by config.spec.ts), as "section.field". */
function schemaKeys(): Array<{ path: string; kind: Kind }> {
  const out: Array<{ path: string; kind: Kind }> = []
  for (const [key, kind] of Object.entries(NODE_CONFIG_SCHEMA)) {
    if (typeof kind === 'object' && !('list' in kind))
      for (const [field, k] of Object.entries(kind as Schema)) out.push({ path: `${key}.${field}`, kind: k })
    else out.push({ path: key, kind })
  }
  return out
}

const consumerOf = (path: string): string | undefined => CONFIG_CONSUMERS[path] ?? CONFIG_CONSUMERS[path.split('.')[0]!]

/** A value for a key unlike its default, and how it shows in the consumer's step. */
function sample(path: string, kind: Kind): { value: unknown; shows: string } {
  if (path === 'logging.level') return { value: 'debug', shows: '"debug"' }
  if (path === 'k3s.role') return { value: K3sRole.SERVER, shows: `"role":${K3sRole.SERVER}` }
  if (path === 'peers.multicastGroup') return { value: '239.1.2.3:7000', shows: '239.1.2.3:7000' }
  if (path === 'discovery.httpsUrls') return { value: ['https://spores.example/net1'], shows: 'https://spores.example/net1' }
  if (typeof kind === 'object')
    return { value: [{ address: '10.77.9.9:7000', expectedIdentity: '', zone: '', priority: 0 }], shows: '10.77.9.9:7000' }
  switch (kind) {
    case 'string':
      return { value: '/sample/value', shows: '/sample/value' }
    case 'number':
      return { value: 17, shows: '17' }
    case 'bool':
      return { value: true, shows: 'true' }
    case 'duration':
    case 'duration-or-zero':
      return { value: { seconds: 7, nanos: 0 }, shows: '7000' }
    case 'map':
      return { value: { sample: 'yes' }, shows: '"sample":"yes"' }
    case 'strings':
      return { value: ['--sample-arg'], shows: '--sample-arg' }
    default:
      return { value: 1, shows: '1' }
  }
}

function withKey(base: NodeConfig, path: string, value: unknown): NodeConfig {
  const [section, field] = path.split('.')
  const partial = JSON.parse(JSON.stringify(NodeConfig.toJSON(base))) as Record<string, unknown>
  const copy = NodeConfig.fromJSON(partial)
  const c = copy as unknown as Record<string, Record<string, unknown>>
  if (field == null) (copy as unknown as Record<string, unknown>)[section!] = value
  else c[section!] = { ...(c[section!] ?? {}), [field]: value }
  return NodeConfig.fromPartial(copy)
}

const base = NodeConfig.fromPartial({ networkId: 'net1', nodeId: 'n1', peers: { listenAddress: '127.0.0.1:0' }, k3s: { enabled: false } })

describe('every NodeConfig key has an owner, every manager-owned key a consumer', () => {
  it('fails when a key is added to the schema without an ownership entry or a consumer', () => {
    const missingOwner = schemaKeys()
      .filter((k) => ownerOf(k.path) == null)
      .map((k) => k.path)
    expect(missingOwner).toEqual([])
    const missingConsumer = schemaKeys()
      .filter((k) => ownerOf(k.path) === 'manager' && consumerOf(k.path) == null)
      .map((k) => k.path)
    expect(missingConsumer).toEqual([])
    // And no consumer for a key that is not manager-owned (it would never be applied).
    const stray = Object.keys(CONFIG_CONSUMERS).filter((k) => ownerOf(k) !== 'manager')
    expect(stray).toEqual([])
  })

  const managerKeys = schemaKeys().filter((k) => ownerOf(k.path) === 'manager')
  it.each(managerKeys.map((k) => [k.path, k.kind] as const))(
    '%s: a change plans exactly one step, for its consumer, carrying the value',
    (path, kind) => {
      const { value, shows } = sample(path, kind)
      const steps = planReconfiguration(base, withKey(base, path, value))
      expect(steps.map((s) => s.type)).toEqual([consumerOf(path)])
      expect(JSON.stringify(steps[0])).toContain(shows)
    }
  )

  it('nothing changed: nothing to do', () => {
    expect(planReconfiguration(base, NodeConfig.fromPartial({ ...base, version: 9 }))).toEqual([])
  })
})

describe('manager-owned values are checked before a trial', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'live-config-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const refusal = (c: NodeConfig): string => {
    try {
      validateManagedValues(c, 'remote NodeConfig')
    } catch (err) {
      expect(isInvalidConfigError(err)).toBe(true)
      return (err as Error).message
    }
    return 'accepted'
  }

  it('names the key of a bad value', () => {
    expect(refusal(NodeConfig.fromPartial({ logging: { level: 'loud' } }))).toBe(
      'remote NodeConfig.logging.level: "loud" is not one of error, warn, info, debug'
    )
    expect(refusal(NodeConfig.fromPartial({ discovery: { httpsUrls: ['http://plain.example'] } }))).toBe(
      'remote NodeConfig.discovery.httpsUrls[0]: "http://plain.example" is not an https:// URL'
    )
    expect(refusal(NodeConfig.fromPartial({ discovery: { httpsCaFile: join(dir, 'missing.pem') } }))).toContain(
      'remote NodeConfig.discovery.httpsCaFile: cannot read'
    )
    writeFileSync(join(dir, 'not-a-ca.pem'), 'hello')
    expect(refusal(NodeConfig.fromPartial({ discovery: { httpsCaFile: join(dir, 'not-a-ca.pem') } }))).toContain('holds no PEM certificate')
    expect(refusal(NodeConfig.fromPartial({ k3s: { enabled: true, dataDir: 'relative' } }))).toContain('remote NodeConfig.k3s.dataDir')
    expect(refusal(NodeConfig.fromPartial({ logging: { level: 'debug' }, discovery: { httpsUrls: ['https://ok.example'] } }))).toBe(
      'accepted'
    )
  })

  it.each([
    ['peers.phiThreshold', { peers: { phiThreshold: -1 } }, 'must be above 0'],
    ['peers.phiThreshold', { peers: { phiThreshold: Number.NaN } }, 'must be above 0'],
    ['peers.pingInterval', { peers: { pingInterval: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['peers.pingInterval', { peers: { pingInterval: { seconds: -1, nanos: 0 } } }, 'must be above 0'],
    ['discovery.clockSlack', { discovery: { clockSlack: { seconds: -5, nanos: 0 } } }, 'must be 0 or more'],
    ['discovery.refreshInterval', { discovery: { refreshInterval: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['discovery.sourceTimeout', { discovery: { sourceTimeout: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['handoff.configConfirmWindow', { handoff: { configConfirmWindow: { seconds: -30, nanos: 0 } } }, 'must be above 0'],
    ['handoff.configConfirmWindow', { handoff: { configConfirmWindow: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['handoff.commitDeadline', { handoff: { commitDeadline: { seconds: -1, nanos: 0 } } }, 'must be above 0'],
    ['handoff.defaultHeartbeatInterval', { handoff: { defaultHeartbeatInterval: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['reconnect.initial', { reconnect: { initial: { seconds: 0, nanos: -1_000_000 } } }, 'must be above 0'],
    ['reconnect.max', { reconnect: { max: { seconds: 0, nanos: 0 } } }, 'must be above 0'],
    ['reconnect.multiplier', { reconnect: { multiplier: 0.5 } }, 'must be 1 or more'],
    ['peers.multicastGroup', { peers: { multicastGroup: '239.1.2.3:70000' } }, 'is not 1–65535'],
    ['peers.multicastGroup', { peers: { multicastGroup: '239.1.2.3:0' } }, 'is not 1–65535'],
    ['peers.multicastGroup', { peers: { multicastGroup: '10.0.0.1:7000' } }, 'not an IPv4 multicast group'],
    ['peers.multicastGroup', { peers: { multicastGroup: 'group:7000' } }, 'not an IPv4 multicast group'],
    ['peers.multicastInterface', { peers: { multicastInterface: 'eth0' } }, 'not an IPv4 interface address']
  ] as const)('%s out of range is refused naming the key (%j)', (key, partial, why) => {
    const msg = refusal(NodeConfig.fromPartial(partial as Partial<NodeConfig>))
    expect(msg).toContain(`remote NodeConfig.${key}: `)
    expect(msg).toContain(why)
  })

  it('in range (and the defaults) is accepted', () => {
    const ok = NodeConfig.fromPartial({
      peers: {
        phiThreshold: 0.5,
        pingInterval: { seconds: 0, nanos: 250_000_000 },
        multicastGroup: '239.1.2.3:7000',
        multicastInterface: '192.168.1.2'
      },
      discovery: { clockSlack: { seconds: 0, nanos: 0 }, refreshInterval: { seconds: 1, nanos: 0 } },
      handoff: { configConfirmWindow: { seconds: 1, nanos: 0 } },
      reconnect: { multiplier: 1 }
    })
    expect(refusal(ok)).toBe('accepted')
    expect(refusal(NodeConfig.fromPartial({ peers: { multicastGroup: '239.1.2.3' } }))).toBe('accepted') // port: the default
    expect(refusal(NodeConfig.fromPartial({}))).toBe('accepted')
  })

  it('peers.* is refused on a node without peers.listenAddress (no peer networking would take it), naming the keys', () => {
    const noPeers = NodeConfig.fromPartial({ networkId: 'net1', nodeId: 'n1' })
    const remote = NodeConfig.fromPartial({ version: 2, peers: { seeds: [{ address: '10.0.0.2:7000' }], phiThreshold: 12 } })
    expect(() => validateAgainstLocal(remote, noPeers)).toThrow(
      'remote NodeConfig: peers.seeds, peers.phiThreshold cannot take effect: this node runs no peer networking (its local config sets no peers.listenAddress)'
    )
    expect(() => validateAgainstLocal(remote, base)).not.toThrow() // base has a listen address
    expect(() => validateAgainstLocal(NodeConfig.fromPartial({ version: 2, peers: {} }), noPeers)).not.toThrow() // nothing set
  })
})
