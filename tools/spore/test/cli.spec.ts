import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Spore, SporeBundle } from '@mycelium/core-interfaces'
import { EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED, runCli } from '../src/index.js'

let dir: string
let out: string
let err: string
const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t), now: () => Date.now() }
const p = (f: string): string => join(dir, f)

async function spore(...args: string[]): Promise<number> {
  out = ''
  err = ''
  return runCli(args, io)
}

const SERVICE_YAML = `# the Network Manager of net1
networkId: net1
name: service/network-manager
ttl: 24h
service:
  service: network-manager
  endpoints:
    - address: "10.0.0.1:7000"
      priority: 0
    - address: "10.0.0.2:7000"
      priority: 1
`

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spore-cli-'))
  for (const label of ['ops-a', 'ops-b', 'ops-c']) expect(await spore('keygen', '--label', label, '--out-dir', dir)).toBe(EXIT_OK)
  expect(
    await spore(
      'trust-bundle',
      '--network',
      'net1',
      '--threshold',
      '2',
      '--out',
      p('trust.json'),
      '--key',
      p('ops-a.pub.json'),
      p('ops-b.pub.json'),
      p('ops-c.pub.json')
    )
  ).toBe(EXIT_OK)
  writeFileSync(p('nm.yaml'), SERVICE_YAML)
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const sequences = (file: string): number[] =>
  SporeBundle.fromJSON(JSON.parse(readFileSync(file, 'utf8'))).spores.map((s) => Spore.decode(s.spore).sequence)

describe('spore CLI', () => {
  it('keygen writes a 0600 private key and refuses to overwrite it', async () => {
    expect(statSync(p('ops-a.key')).mode & 0o777).toBe(0o600)
    expect(await spore('keygen', '--label', 'ops-a', '--out-dir', dir)).toBe(EXIT_USAGE)
    expect(err).toContain('refusing to overwrite a key')
  })

  it('round trip: keygen → sign → verify succeeds', async () => {
    expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), p('ops-c.key'), '--out', p('spores.json'))).toBe(EXIT_OK)
    expect(out).toContain('signed "service/network-manager" sequence 1')
    expect(await spore('verify', p('spores.json'), '--trust', p('trust.json'))).toBe(EXIT_OK)
    expect(out).toContain('ok       service/network-manager sequence 1 (2 signatures)')
    expect(await spore('print', p('spores.json'))).toBe(EXIT_OK)
    const printed = JSON.parse(out) as Array<{ spore: { service: { endpoints: Array<{ address: string }> } }; signedBy: string[] }>
    expect(printed[0]!.spore.service.endpoints.map((e) => e.address)).toEqual(['10.0.0.1:7000', '10.0.0.2:7000'])
    expect(printed[0]!.signedBy).toHaveLength(2)
  })

  it('a flipped byte fails verification with a clear message', async () => {
    await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), p('ops-b.key'), '--out', p('spores.json'))
    const bundle = SporeBundle.fromJSON(JSON.parse(readFileSync(p('spores.json'), 'utf8')))
    const bytes = Buffer.from(bundle.spores[0]!.spore)
    const at = bytes.indexOf('10.0.0.2')
    bytes[at + 7] = '9'.charCodeAt(0) // 10.0.0.2 → 10.0.0.9
    bundle.spores[0]!.spore = bytes
    writeFileSync(p('spores.json'), JSON.stringify(SporeBundle.toJSON(bundle)))
    expect(await spore('verify', p('spores.json'), '--trust', p('trust.json'))).toBe(EXIT_VERIFY_FAILED)
    expect(err).toMatch(/^REJECTED spore "service\/network-manager" from .*spores.json rejected: signature by key .* does not verify/)
  })

  it('bumps the sequence on every signing and refuses to go back', async () => {
    await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), p('ops-b.key'), '--out', p('spores.json'))
    await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), p('ops-b.key'), '--out', p('spores.json'))
    expect(sequences(p('spores.json'))).toEqual([2])
    expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), '--out', p('spores.json'), '--sequence', '2')).toBe(EXIT_USAGE)
    expect(err).toContain('sequence 2 is not above the current 2')
    expect(sequences(p('spores.json'))).toEqual([2]) // nothing stored was lost
  })

  it('reports one signature short of the threshold as rejected', async () => {
    await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), '--out', p('spores.json'))
    expect(await spore('verify', p('spores.json'), '--trust', p('trust.json'))).toBe(EXIT_VERIFY_FAILED)
    expect(err).toContain('1 valid of 2 required')
  })

  it('names the file and line of an unknown key in the input', async () => {
    writeFileSync(p('bad.yaml'), SERVICE_YAML.replace('      priority: 1', '      priorty: 1'))
    expect(await spore('sign', p('bad.yaml'), '--key', p('ops-a.key'), '--out', p('spores.json'))).toBe(EXIT_USAGE)
    expect(err).toContain(`${p('bad.yaml')}:11: unknown key "service.endpoints[].priorty"`)
  })

  it('refuses input without an expiry, and a bad ttl, naming where', async () => {
    writeFileSync(p('noexp.yaml'), SERVICE_YAML.replace('ttl: 24h\n', ''))
    expect(await spore('sign', p('noexp.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'))).toBe(EXIT_USAGE)
    expect(err).toContain('every spore expires')
    writeFileSync(p('badttl.yaml'), SERVICE_YAML.replace('ttl: 24h', 'ttl: soon'))
    expect(await spore('sign', p('badttl.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'))).toBe(EXIT_USAGE)
    expect(err).toContain(`${p('badttl.yaml')}:4: "soon" is not a duration`)
  })

  it('exits 2 with usage for a missing required flag', async () => {
    expect(await spore('verify', p('spores.json'))).toBe(EXIT_USAGE)
    expect(err).toContain("required option '--trust <file>' not specified")
  })

  describe('hostile input: one error line naming what and where, exit 2, never a stack', () => {
    async function signed(): Promise<void> {
      expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), p('ops-b.key'), '--out', p('spores.json'))).toBe(EXIT_OK)
    }
    const oneLine = (): void => {
      expect(err.trim().split('\n')).toHaveLength(1)
      expect(err).not.toMatch(/\n\s+at /)
    }

    it.each(['NaN', 'Infinity', '1.5', '1e30', '9007199254740993', '-1', '0', '0x10', '', 'abc'])(
      'sign --sequence %j is refused',
      async (value) => {
        expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'), '--sequence', value)).toBe(EXIT_USAGE)
        expect(err).toContain('--sequence')
        oneLine()
      }
    )

    it('sign --sequence 9007199254740991 is written exactly', async () => {
      expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'), '--sequence', '9007199254740991')).toBe(
        EXIT_OK
      )
      expect(sequences(p('s.json'))).toEqual([9007199254740991])
      // and the next bump would leave the safe range: refused
      expect(await spore('sign', p('nm.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'))).toBe(EXIT_USAGE)
      oneLine()
    })

    it.each(['x', '0', '-1', '1.5', 'NaN', ''])('trust-bundle --threshold %j is refused and writes nothing', async (value) => {
      expect(
        await spore('trust-bundle', '--network', 'net1', '--threshold', value, '--out', p('t2.json'), '--key', p('ops-a.pub.json'))
      ).toBe(EXIT_USAGE)
      expect(err).toContain('--threshold')
      oneLine()
      expect(() => statSync(p('t2.json'))).toThrow()
    })

    it.each([
      ['"signatures":[null]', (b: { spores: Array<Record<string, unknown>> }) => (b.spores[0]!.signatures = [null])],
      ['"spore":5', (b: { spores: Array<Record<string, unknown>> }) => (b.spores[0]!.spore = 5)],
      ['"spores":[null]', (b: { spores: unknown[] }) => (b.spores = [null])]
    ])('verify of a bundle with %s: one line naming the file, exit 2', async (_what, mutate) => {
      await signed()
      const bundle = JSON.parse(readFileSync(p('spores.json'), 'utf8')) as { spores: Array<Record<string, unknown>> }
      mutate(bundle)
      writeFileSync(p('bad.json'), JSON.stringify(bundle))
      expect(await spore('verify', p('bad.json'), '--trust', p('trust.json'))).toBe(EXIT_USAGE)
      expect(err).toContain(p('bad.json'))
      oneLine()
    })

    it.each([
      ['random bytes', () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))],
      ['NULs', () => Buffer.alloc(65536)],
      ['an empty file', () => Buffer.alloc(0)]
    ])('verify of %s: one line naming the file, exit 2', async (_what, make) => {
      writeFileSync(p('garbage.bin'), make())
      expect(await spore('verify', p('garbage.bin'), '--trust', p('trust.json'))).toBe(EXIT_USAGE)
      expect(err).toContain(p('garbage.bin'))
      oneLine()
    })

    it('verify with a missing or malformed trust file, print of a missing bundle', async () => {
      await signed()
      expect(await spore('verify', p('spores.json'), '--trust', p('nope.json'))).toBe(EXIT_USAGE)
      expect(err).toContain(p('nope.json'))
      oneLine()
      writeFileSync(p('t.json'), 'null')
      expect(await spore('verify', p('spores.json'), '--trust', p('t.json'))).toBe(EXIT_USAGE)
      oneLine()
      writeFileSync(p('k.pub.json'), 'null')
      expect(await spore('trust-bundle', '--network', 'net1', '--threshold', '1', '--out', p('t3.json'), '--key', p('k.pub.json'))).toBe(
        EXIT_USAGE
      )
      expect(err).toContain(p('k.pub.json'))
      oneLine()
      expect(
        await spore(
          'trust-bundle',
          '--network',
          'net1',
          '--threshold',
          '1',
          '--out',
          p('t3.json'),
          '--key',
          p('ops-a.pub.json'),
          '--ca',
          p('none.pem')
        )
      ).toBe(EXIT_USAGE)
      expect(err).toContain(p('none.pem'))
      oneLine()
    })

    it.each([
      ['name: "service/../../etc/passwd"', 'name: service/network-manager', 'name: "service/../../etc/passwd"'],
      ['ttl: 99999999999h', 'ttl: 24h', 'ttl: 99999999999h'],
      ['expiresAt: 10000-01-01', 'ttl: 24h', 'expiresAt: "+010000-01-01T00:00:00Z"']
    ])('sign refuses %s naming file and line', async (_what, from, to) => {
      writeFileSync(p('bad.yaml'), SERVICE_YAML.replace(from, to))
      expect(await spore('sign', p('bad.yaml'), '--key', p('ops-a.key'), '--out', p('s.json'))).toBe(EXIT_USAGE)
      expect(err).toMatch(new RegExp(`${p('bad.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+`))
      oneLine()
    })
  })
})
