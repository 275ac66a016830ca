import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { build } from 'esbuild'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { until as untilTrue } from '@mycelium/testing'
import { rawIdentity, tempDir } from './helpers/pki.js'

/**
 * Three hosts on one machine (../shared/TESTBED.md): network namespaces
 * joined by a bridge in a fourth "switch" namespace, a real node process in
 * each. Nodes find each other by signed multicast announcements, heartbeat
 * over mTLS, see a partitioned node go suspect then down, and come back up
 * when the link is restored. Needs root and iproute2; skipped with a printed
 * reason otherwise. Namespaces are always deleted, also on failure.
 */
function whyNotRunnable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'iproute2 (`ip`) is not installed'
  }
  return undefined
}

const skipReason = whyNotRunnable()
if (skipReason != null) process.stdout.write(`netns multi-host test skipped: ${skipReason}\n`)
const maybe = skipReason == null ? describe : describe.skip

const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

interface NodeEvent {
  at: number
  node: string
  event: string
  peer?: string
}

maybe('multi-host: three namespaces, multicast discovery, partition and recovery', () => {
  const tag = randomBytes(2).toString('hex')
  const sw = `myc-sw-${tag}`
  const hosts = ['a', 'b', 'c'].map((h, i) => ({
    name: `node-${h}`,
    ns: `myc-${h}-${tag}`,
    veth: `mv${h}${tag}`,
    address: `10.77.${(Number.parseInt(tag.slice(0, 2), 16) % 200) + 10}.${i + 1}`
  }))
  const children: ChildProcess[] = []
  const events: NodeEvent[] = []
  let tmp: ReturnType<typeof tempDir>

  const cleanup = (): void => {
    for (const c of children) c.kill('SIGKILL')
    for (const ns of [...hosts.map((h) => h.ns), sw]) {
      try {
        ip('netns', 'del', ns)
      } catch {
        // already gone
      }
    }
  }

  beforeAll(async () => {
    tmp = tempDir('basic-net-netns-')
    try {
      ip('netns', 'add', sw)
      ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge')
      ip('-n', sw, 'link', 'set', 'br0', 'up')
      for (const h of hosts) {
        ip('netns', 'add', h.ns)
        ip('link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns)
        ip('link', 'set', h.veth, 'netns', sw)
        ip('-n', sw, 'link', 'set', h.veth, 'master', 'br0')
        ip('-n', sw, 'link', 'set', h.veth, 'up')
        ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0')
        ip('-n', h.ns, 'link', 'set', 'eth0', 'up')
        ip('-n', h.ns, 'link', 'set', 'lo', 'up')
        ip('-n', h.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
      }

      // Identities issued by a test CA; each node holds only its own key.
      const ca = await CertificateAuthority.create('net1')
      writeFileSync(join(tmp.dir, 'ca.crt'), ca.certificatePem)
      for (const h of hosts) {
        const id = await rawIdentity(ca, `spiffe://net1/node/${h.name}`)
        writeFileSync(join(tmp.dir, `${h.name}.key`), id.keyPem, { mode: 0o600 })
        writeFileSync(join(tmp.dir, `${h.name}.crt`), id.certPem)
      }

      // The node program, bundled from TypeScript source.
      const bundle = join(tmp.dir, 'netns-node.cjs')
      await build({
        entryPoints: [join(__dirname, 'fixtures', 'netns-node.ts')],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        conditions: ['@mycelium/source'],
        outfile: bundle,
        logLevel: 'silent'
      })

      for (const h of hosts) {
        const child = spawn(
          'ip',
          [
            'netns',
            'exec',
            h.ns,
            process.execPath,
            bundle,
            JSON.stringify({ networkId: 'net1', nodeId: h.name, dir: tmp.dir, address: h.address, port: 7000 })
          ],
          {
            stdio: ['ignore', 'pipe', 'inherit']
          }
        )
        children.push(child)
        createInterface({ input: child.stdout! }).on('line', (line) => {
          try {
            events.push(JSON.parse(line) as NodeEvent)
          } catch {
            // not an event line
          }
        })
      }
    } catch (err) {
      cleanup()
      throw err
    }
  }, 60_000)

  afterAll(() => {
    cleanup()
    tmp?.cleanup()
  })

  const until = (what: string, probe: () => boolean, timeoutMs = 20_000): Promise<true> =>
    untilTrue(what, probe, timeoutMs, 50, () => ({ events: events.slice(-20) }))

  const lastState = (viewer: string, peer: string): string | undefined =>
    events.filter((e) => e.node === viewer && e.peer === peer && e.event.startsWith('peer:')).at(-1)?.event

  it('discovers every peer by multicast, detects a partition, and recovers', async () => {
    const [a, b, c] = hosts as [(typeof hosts)[0], (typeof hosts)[0], (typeof hosts)[0]]
    await until('every node sees both others up', () =>
      hosts.every((h) => hosts.filter((o) => o !== h).every((o) => lastState(h.name, o.name) === 'peer:up'))
    )

    // Partition c: its switch port goes down.
    const cutAt = Date.now()
    ip('-n', sw, 'link', 'set', c.veth, 'down')
    await until('a and b see c down', () => lastState(a.name, c.name) === 'peer:down' && lastState(b.name, c.name) === 'peer:down')
    for (const viewer of [a.name, b.name]) {
      const seq = events.filter((e) => e.node === viewer && e.peer === c.name && e.at >= cutAt).map((e) => e.event)
      expect(seq).toEqual(['peer:suspect', 'peer:down'])
    }
    // c sees both others go down too; a and b still see each other.
    await until('c sees a and b down', () => lastState(c.name, a.name) === 'peer:down' && lastState(c.name, b.name) === 'peer:down')
    expect(lastState(a.name, b.name)).toBe('peer:up')

    // Heal the partition.
    ip('-n', sw, 'link', 'set', c.veth, 'up')
    await until('everyone up again', () =>
      hosts.every((h) => hosts.filter((o) => o !== h).every((o) => lastState(h.name, o.name) === 'peer:up'))
    )
  }, 90_000)
})
