import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { isInvalidConfigError } from '@mycelium/core-interfaces'
import { loadConfig, runCli } from '../src/index.js'
import { prepareStatusSocket } from '../src/status-server.js'

/**
 * Hostile config and CLI input (issue classes 6, 7, 9, 10, 11): every bad
 * value is one InvalidConfigError naming the key and where it came from, the
 * same for `config validate` and `run`, before anything is written.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 100)

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'node-core-hostile-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const BASE = (): string => `networkId: net1\nnodeId: edge-1\nstateDir: ${join(dir, 'state')}\n`
const write = (text: string): string => {
  const f = join(dir, 'node.yaml')
  writeFileSync(f, text)
  return f
}

async function refusal(text: string, env: NodeJS.ProcessEnv = {}, sets: string[] = []): Promise<string> {
  try {
    await loadConfig({ file: write(text), env, sets })
  } catch (err) {
    if (!isInvalidConfigError(err)) throw err
    return (err as Error).message
  }
  throw new Error(`expected a refusal of:\n${text}`)
}

interface Io {
  out: string
  err: string
  code: number
}
async function cli(...argv: string[]): Promise<Io> {
  const io = { out: '', err: '', code: 0 }
  io.code = await runCli(argv, {
    out: (t) => void (io.out += t),
    err: (t) => void (io.err += t),
    env: {},
    untilStopped: () => Promise.resolve()
  })
  return io
}
const oneLine = (io: Io): void => {
  expect(io.err.trim().split('\n')).toHaveLength(1)
  expect(io.err).not.toMatch(/\n\s+at /)
}

describe('class 6: durations fit their timers', () => {
  it.each([
    [
      'discovery.refreshInterval: 720h',
      'discovery:\n  refreshInterval: 720h\n',
      /discovery.refreshInterval: "720h" is longer than 2147483647 ms/
    ],
    [
      'reconnect.max: 99999999999999999999h',
      'reconnect:\n  max: 99999999999999999999h\n',
      /reconnect.max: "99999999999999999999h" is not a duration/
    ],
    ['reconnect.max: 597h', 'reconnect:\n  max: 597h\n', /reconnect.max: "597h" is longer than/],
    ['handoff.commitDeadline: 0s', 'handoff:\n  commitDeadline: 0s\n', /handoff.commitDeadline: "0s" is zero/],
    ['peers.pingInterval: 0ms', 'peers:\n  pingInterval: 0ms\n', /peers.pingInterval: "0ms" is zero/],
    ['discovery.sourceTimeout: -1s', 'discovery:\n  sourceTimeout: -1s\n', /not a duration/]
  ])('%s is refused', async (_what, yaml, message) => {
    expect(await refusal(BASE() + yaml)).toMatch(message)
  })

  it('accepts the longest timer and a zero clock slack', async () => {
    const c = await loadConfig({
      file: write(`${BASE()}discovery:\n  refreshInterval: 596h\n  clockSlack: 0s\n`.replace('596h', '2147483647ms'))
    })
    expect(c.discovery?.refreshInterval).toEqual({ seconds: 2147483, nanos: 647e6 })
    expect(c.discovery?.clockSlack).toEqual({ seconds: 0, nanos: 0 })
  })

  it('applies the same bound to environment variables and --set', async () => {
    expect(await refusal(BASE(), { MYCELIUM_DISCOVERY__REFRESH_INTERVAL: '720h' })).toMatch(
      /environment MYCELIUM_DISCOVERY__REFRESH_INTERVAL: "720h" is longer/
    )
    expect(await refusal(BASE(), {}, ['reconnect.max=1000h'])).toMatch(/--set reconnect.max: "1000h" is longer/)
  })
})

describe('class 9: one validation for `config validate` and `run`, before anything is written', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['logging.level: bogus', 'logging:\n  level: bogus\n', /logging.level: "bogus" is not one of error, warn, info, debug/],
    ['logging.format: xml', 'logging:\n  format: xml\n', /logging.format: "xml" is not one of json, pretty/],
    [
      'status.httpListenAddress: "not an address"',
      'status:\n  httpListenAddress: "not an address"\n',
      /status.httpListenAddress: "not an address" is not host:port/
    ],
    ['status.grpcListenAddress: 127.0.0.1:99999', 'status:\n  grpcListenAddress: "127.0.0.1:99999"\n', /port 99999/],
    [
      'peers.multicastGroup: "x:y:z"',
      'peers:\n  multicastGroup: "x:y:z"\n',
      /peers.multicastGroup: "x:y:z" is not an IPv4 multicast group/
    ],
    ['peers.multicastGroup: 10.0.0.1', 'peers:\n  multicastGroup: 10.0.0.1\n', /not a multicast address/],
    ['peers.listenAddress: ":7000"', 'peers:\n  listenAddress: ":7000"\n', /peers.listenAddress/],
    ['a seed without a port', 'peers:\n  seeds:\n    - address: 10.0.0.1\n', /peers.seeds\[0\].address/],
    [
      'an enrolment endpoint with a bad identity',
      'identity:\n  enrollmentEndpoints:\n    - address: 10.0.0.1:7443\n      expectedIdentity: x\n',
      /expectedIdentity/
    ],
    [
      'an http:// spore URL',
      'discovery:\n  httpsUrls: ["http://10.0.0.1/spores"]\n',
      /discovery.httpsUrls\[0\]: "http:\/\/10.0.0.1\/spores" is not an https/
    ],
    ['reconnect.multiplier: 1000', 'reconnect:\n  multiplier: 1000\n', /reconnect.multiplier/]
  ]
  it.each(cases)('%s: validate and run both exit 2 with one line, and run writes nothing', async (_what, yaml, message) => {
    const file = write(BASE() + yaml)
    const validate = await cli('config', 'validate', file)
    expect(validate.code).toBe(2)
    expect(validate.err).toMatch(message)
    oneLine(validate)
    const run = await cli('run', '--config', file)
    expect(run.code).toBe(2)
    expect(run.err).toBe(validate.err)
    expect(existsSync(join(dir, 'state'))).toBe(false)
  })

  it('accepts good addresses of every form', async () => {
    const c = await loadConfig({
      file: write(
        `${BASE()}status:\n  httpListenAddress: "[::1]:9464"\n  grpcListenAddress: localhost:0\npeers:\n  multicastGroup: 239.77.0.1:7946\n  listenAddress: 0.0.0.0:7000\n`
      )
    })
    expect(c.peers?.multicastGroup).toBe('239.77.0.1:7946')
  })
})

describe('class 10: YAML aliases, map values, reserved keys, node ids, absolute paths', () => {
  it('resolves YAML aliases', async () => {
    const c = await loadConfig({
      file: write(`${BASE()}x-zone: &z eu-1\n`.replace('x-zone: &z eu-1\n', '') + 'labels:\n  zone: &z eu-1\n  rack: *z\n')
    })
    expect(c.labels).toEqual({ zone: 'eu-1', rack: 'eu-1' })
    const mapAlias = await loadConfig({ file: write(`${BASE()}labels: &l { zone: a }\nk3s:\n  nodeLabels: *l\n`) })
    expect(mapAlias.k3s?.nodeLabels).toEqual({ zone: 'a' })
  })

  it.each([
    ['a list as a label value', 'labels:\n  zone: [1, 2]\n', /labels.zone: must be a string, not \[1,2\]/],
    ['a map as a label value', 'labels:\n  zone: { a: b }\n', /labels.zone: must be a string/],
    ['a number as a label value', 'labels:\n  rack: 12\n', /labels.rack: must be a string, not 12/],
    ['a number in a list of strings', 'discovery:\n  httpsUrls: [1]\n', /httpsUrls\[0\]: must be a string/]
  ])('refuses %s instead of coercing it', async (_what, yaml, message) => {
    expect(await refusal(BASE() + yaml)).toMatch(message)
  })

  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'])(
    'refuses the key %s in YAML, env and --set',
    async (key) => {
      expect(await refusal(`${BASE()}${key}: x\n`)).toMatch(/unknown key/)
      expect(await refusal(`${BASE()}status:\n  ${key}: x\n`)).toMatch(/unknown key/)
      expect(await refusal(`${BASE()}labels:\n  ${key}: x\n`)).toMatch(/reserved|not a label key/)
      expect(await refusal(BASE(), { [`MYCELIUM_${key.toUpperCase()}`]: 'x' })).toMatch(/is not a config key/)
      expect(await refusal(BASE(), {}, [`${key}=x`])).toMatch(/is not a config key/)
      expect(await refusal(BASE(), {}, [`status.${key}=x`])).toMatch(/is not a config key/)
      expect(await refusal(BASE(), {}, [`labels.${key}=x`])).toMatch(/reserved|not a label key/)
    }
  )

  it.each(['../../etc/passwd', 'a\u0000b', 'a b', 'Edge-1', '-x', 'x'.repeat(64), 'nödé', ''])(
    'refuses the node id %j from YAML, env and --set',
    async (id) => {
      const yaml = `networkId: net1\nnodeId: ${JSON.stringify(id)}\nstateDir: ${join(dir, 'state')}\n`
      expect(await refusal(yaml)).toMatch(/nodeId/)
      expect(await refusal(BASE(), { MYCELIUM_NODE_ID: id })).toMatch(/nodeId/)
      expect(await refusal(BASE(), {}, [`nodeId=${id}`])).toMatch(/nodeId/)
    }
  )

  it.each(['stateDir', 'identity.keyFile', 'identity.caFile', 'identity.joinTokenFile', 'discovery.bootstrapFile', 'status.socketPath'])(
    'requires an absolute %s',
    async (key) => {
      expect(await refusal(BASE(), {}, [`${key}=relative/path`])).toMatch(
        new RegExp(`${key.replace('.', '\\.')}: "relative/path" is relative`)
      )
    }
  )

  it('property: any YAML document is loaded or refused with InvalidConfigError, never another error', async () => {
    const scalar = fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom('1s', '720h', '0ms', '*a', '&a x', '[1,2]', '{a: b}')
    )
    const key = fc.constantFrom(
      'networkId',
      'nodeId',
      'labels',
      'constructor',
      '__proto__',
      'status',
      'logging',
      'peers',
      'discovery',
      'reconnect',
      'handoff',
      'k3s',
      'stateDir',
      'x'
    )
    const doc = fc.dictionary(key, fc.oneof(scalar, fc.dictionary(fc.oneof(key, fc.string({ maxLength: 6 })), scalar, { maxKeys: 4 })), {
      maxKeys: 6
    })
    await fc.assert(
      fc.asyncProperty(doc, fc.boolean(), async (value, asText) => {
        const text = asText
          ? Object.entries(value)
              .map(([k, v]) => `${k}: ${typeof v === 'object' && v != null ? JSON.stringify(v) : String(v)}`)
              .join('\n')
          : JSON.stringify(value)
        try {
          await loadConfig({ file: write(text) })
        } catch (err) {
          if (!isInvalidConfigError(err)) throw err
        }
      }),
      { numRuns: RUNS }
    )
  })
})

describe('class 7: the status socket path', () => {
  it('run refuses a regular file at status.socketPath, leaves it and its directory alone', async () => {
    const parent = join(dir, 'shared')
    mkdirSync(parent, { mode: 0o755 })
    chmodSync(parent, 0o755)
    const victim = join(parent, 'important.txt')
    writeFileSync(victim, 'keep me')
    const file = write(`${BASE()}status:\n  socketPath: ${victim}\n`)
    const run = await cli('run', '--config', file)
    expect(run.code).toBe(2)
    expect(run.err).toContain(`status.socketPath ${victim}: exists and is a regular file; refusing to replace it`)
    oneLine(run)
    expect(existsSync(victim)).toBe(true)
    expect(statSync(parent).mode & 0o777).toBe(0o755)
    expect(existsSync(join(dir, 'state'))).toBe(false)
    // The component itself refuses too (and does not chmod the existing directory).
    await expect(prepareStatusSocket(victim)).rejects.toThrow(/is a regular file/)
    expect(statSync(parent).mode & 0o777).toBe(0o755)
    await expect(prepareStatusSocket(parent)).rejects.toThrow(/is a directory/)
  })

  it('removes a stale socket, refuses a live one, creates a missing directory 0700', async () => {
    const sock = join(dir, 'run', 'status.sock')
    await prepareStatusSocket(sock)
    expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o700)
    const server: Server = createServer()
    await new Promise<void>((resolve) => server.listen(sock, resolve))
    await expect(prepareStatusSocket(sock)).rejects.toThrow(/a running process answers/)
    await new Promise<void>((resolve) => server.close(() => resolve()))
    // A stale socket, as a crash leaves it: a process that listened and was killed.
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`
    ])
    expect(statSync(sock).isSocket()).toBe(true)
    await prepareStatusSocket(sock)
    expect(existsSync(sock)).toBe(false)
  })
})

describe('class 11: CLI numbers and files', () => {
  it.each(['abc', '-1', '0', '1.5', '1e3', '99999999999999999'])('dev --heartbeat %j exits 2 with one line', async (value) => {
    const io = await cli('dev', '--heartbeat', value)
    expect(io.code).toBe(2)
    expect(io.err).toContain('--heartbeat')
    oneLine(io)
  })

  it.each(['0', '501', 'x', '2.5'])('dev --agents %j exits 2', async (value) => {
    const io = await cli('dev', '--agents', value)
    expect(io.code).toBe(2)
    oneLine(io)
  })

  it('run --join-token-file <missing> exits 2 with one line naming the flag and file, writing nothing', async () => {
    const file = write(BASE())
    const missing = join(dir, 'no-such-token')
    const io = await cli('run', '--config', file, '--join-token-file', missing)
    expect(io.code).toBe(2)
    expect(io.err).toBe(`error: --join-token-file ${missing}: cannot read: ENOENT\n`)
    expect(readdirSync(dir)).toEqual(['node.yaml'])
  })

  it('--debug is accepted before or after the command', async () => {
    const file = write(BASE())
    expect((await cli('config', 'validate', file, '--debug')).code).toBe(0)
    expect((await cli('--debug', 'config', 'validate', file)).code).toBe(0)
  })

  it('an unreadable config file is one line, exit 2', async () => {
    const io = await cli('config', 'validate', join(dir, 'missing.yaml'))
    expect(io.code).toBe(2)
    oneLine(io)
  })
})
