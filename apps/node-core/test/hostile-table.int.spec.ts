import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import {
  InvalidConfigError,
  isInvalidConfigError,
  isInvalidInputError,
  PeerAssistService,
  Spore,
  strictService,
  Timestamp,
  type SignedSpore
} from '@mycelium/core-interfaces'
import { DISTRESS_ID_PATTERN, PEER_ASSIST_MAX_REQUEST_BYTES, requirementForEndpoint } from '@mycelium/basic-net'
import { createSporeClient, isSporeRejectedError, parseSporeBundle, trustedSporeKeys, verifySpore } from '@mycelium/spore-client'
import { serviceSpore, signSporeForTest, testSigningKey, testTrustBundle, encodeVarint } from '@mycelium/testing'
import { loadConfig, parseDuration } from '../src/index.js'
import { parseWhole } from '../src/cli.js'
import { prepareStatusSocket } from '../src/status-server.js'

/**
 * The closing table of the hostile-input issue, measured: for each defect
 * class, many generated inputs go through the real entry point (verifier,
 * bundle parser, config loader, socket check, rpc deserializer, identity
 * check) and each outcome is counted as refused (a named error), accepted
 * (should have been refused) or crashed (any other exception). Printed as a
 * table; every "accepted" and "crashed" must be 0.
 * FUZZ_RUNS scales the generated inputs.
 */
const N = Number(process.env.FUZZ_RUNS ?? 50)
const NET = 'net1'
const NOW = Date.now()
const keys = [testSigningKey(), testSigningKey()]
const trust = trustedSporeKeys(testTrustBundle(NET, keys, 2), NET)

interface Row {
  tried: number
  accepted: number
  crashed: number
  examples: string[]
}
const table = new Map<string, Row>()

/** Runs `attempt` on one input; `refused(err)` says whether an error is the named refusal expected. */
async function measure(cls: string, input: string, attempt: () => unknown, refused: (err: unknown) => boolean): Promise<void> {
  const row = table.get(cls) ?? { tried: 0, accepted: 0, crashed: 0, examples: [] }
  table.set(cls, row)
  row.tried++
  try {
    await attempt()
    row.accepted++
    row.examples.push(`accepted: ${input.slice(0, 80)}`)
  } catch (err) {
    if (!refused(err)) {
      row.crashed++
      row.examples.push(`crashed: ${input.slice(0, 60)} → ${(err as Error).name}: ${(err as Error).message?.slice(0, 80)}`)
    }
  }
}

const malformed = (err: unknown): boolean => isSporeRejectedError(err) && err.reason === 'malformed'
const verify = (signed: SignedSpore) => () =>
  verifySpore(signed, { trust, nowMs: NOW, clockSlackMs: 30_000, source: 'table', markFor: () => undefined })
const good = (): Spore => serviceSpore(NET, 'network-manager', 5, ['10.0.0.1:7000'], NOW)
const rawSpore = (spore: Spore, extra: number[]): Buffer => Buffer.concat([Buffer.from(Spore.encode(spore).finish()), Buffer.from(extra)])

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hostile-table-'))
})
afterAll(() => {
  rmSync(dir, { recursive: true, force: true })
  const lines = ['class | inputs tried | accepted | crashed', '--- | ---: | ---: | ---:']
  for (const [cls, row] of [...table].sort(([a], [b]) => Number.parseInt(a, 10) - Number.parseInt(b, 10))) {
    lines.push(`${cls} | ${row.tried} | ${row.accepted} | ${row.crashed}`)
  }
  process.stdout.write(`\n${lines.join('\n')}\n`)
})

it('class 1: spores accepted before a rotation survive restarts (a lost spore counts as "accepted" wrongness)', async () => {
  for (let round = 0; round < Math.max(3, N / 20); round++) {
    const k = [testSigningKey(), testSigningKey(), testSigningKey()]
    const n = [testSigningKey()]
    const cachePath = join(dir, `cache-${round}`, 'spores.bin')
    const opts = { networkId: NET, trustBundle: testTrustBundle(NET, k, 2), cachePath }
    const a = createSporeClient({}, opts)
    await a.start()
    a.ingest(
      [
        signSporeForTest(serviceSpore(NET, 'network-manager', 3, ['10.0.0.1:1']), [k[0]!, k[1]!]),
        signSporeForTest(serviceSpore(NET, 'spore-manager', 3, ['10.0.0.2:1']), [k[1]!, k[2]!])
      ],
      'test'
    )
    a.ingest(
      [
        signSporeForTest(
          {
            networkId: NET,
            name: 'bootstrap',
            sequence: 2,
            issuedAt: new Date(NOW - 1000),
            expiresAt: new Date(NOW + 86_400_000),
            body: { $case: 'bootstrap', value: { trustBundle: testTrustBundle(NET, n, 1), seeds: [], httpsUrls: [] } }
          },
          [k[0]!, k[2]!]
        )
      ],
      'test'
    )
    await a.stop()
    const b = createSporeClient({}, opts)
    await b.start()
    for (const name of ['bootstrap', 'service/network-manager', 'service/spore-manager']) {
      await measure(
        '1 rotation + restart',
        name,
        () => {
          if (!b.list().some((s) => s.name === name)) throw new Error('lost')
          throw new InvalidConfigError('kept', name) // "refused" here means: kept, as it must be
        },
        isInvalidConfigError
      )
    }
    await b.stop()
  }
})

it("class 2: timestamps outside protobuf's range", async () => {
  const outside = fc.oneof(
    fc.record({
      seconds: fc.oneof(
        fc.integer({ min: 253_402_300_800, max: 2 ** 50 }),
        fc.integer({ min: -(2 ** 50), max: -62_135_596_801 }),
        fc.constant(1e13)
      ),
      nanos: fc.integer({ min: 0, max: 999_999_999 })
    }),
    fc.record({
      seconds: fc.integer({ min: 0, max: 2 ** 33 }),
      nanos: fc.oneof(fc.integer({ min: 1_000_000_000, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -1 }))
    })
  )
  for (const t of fc.sample(outside, N * 2)) {
    const ts = Timestamp.encode(t).finish()
    const field = fc.sample(fc.constantFrom(4, 5), 1)[0]!
    const spore = { ...good(), ...(field === 4 ? { issuedAt: undefined } : { expiresAt: undefined }) }
    await measure(
      '2 timestamps',
      JSON.stringify(t),
      verify(signSporeForTest(rawSpore(spore, [(field << 3) | 2, ts.length, ...ts]), keys)),
      malformed
    )
  }
})

it('class 3: over-long and overflowing uint64 varints', async () => {
  const bad = fc.oneof(
    fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n + 2n ** 20n }).map((v) => encodeVarint(v)),
    fc
      .tuple(fc.bigInt({ min: 0n, max: 2n ** 40n }), fc.integer({ min: 1, max: 10 }))
      .map(([v, extra]) => encodeVarint(v, encodeVarint(v).length + extra)),
    fc.integer({ min: 11, max: 20 }).map((len) => [...Array(len - 1).fill(0x81), 0x01])
  )
  for (const raw of fc.sample(bad, N * 2)) {
    await measure(
      '3 varints',
      Buffer.from(raw).toString('hex'),
      verify(signSporeForTest(rawSpore({ ...good(), sequence: 0 }, [0x18, ...raw]), keys)),
      malformed
    )
  }
})

it('class 4: garbage is not a bundle', async () => {
  const inputs = [
    ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 8192 }), N * 2).filter((b) => b[0] !== 0x7b),
    new Uint8Array(20 * 1024 * 1024),
    Uint8Array.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 2654435761) % 251))
  ]
  for (const bytes of inputs)
    await measure('4 garbage bundles', `${bytes.length} bytes`, () => parseSporeBundle(bytes, 'file.bin'), isInvalidInputError)
})

it('class 5: malformed JSON spores', async () => {
  const valid = signSporeForTest(good(), keys)
  const record = fc.record({
    spore: fc.oneof(fc.constant(valid.spore.toString('base64')), fc.jsonValue()),
    signatures: fc.oneof(
      fc.array(fc.oneof(fc.jsonValue(), fc.record({ keyId: fc.jsonValue(), signature: fc.jsonValue() }))),
      fc.jsonValue()
    )
  })
  for (const r of fc.sample(record, N * 2)) {
    const text = JSON.stringify({ spores: [r] })
    await measure(
      '5 malformed JSON',
      text,
      () => {
        for (const s of parseSporeBundle(Buffer.from(text), 'b.json')) verify(s)()
      },
      (err) => isInvalidInputError(err) || isSporeRejectedError(err)
    )
  }
})

it('class 6: durations beyond a timer', async () => {
  const bad = fc.oneof(
    fc.tuple(fc.integer({ min: 597, max: 10 ** 9 }), fc.constant('h')),
    fc.tuple(fc.integer({ min: 2 ** 31, max: 10 ** 12 }), fc.constant('ms')),
    fc.tuple(fc.constant(0), fc.constantFrom('ms', 's', 'm', 'h')),
    fc.tuple(fc.constant('99999999999999999999'), fc.constant('h'))
  )
  for (const [n, unit] of fc.sample(bad, N)) {
    await measure('6 durations', `${n}${unit}`, () => parseDuration(`${n}${unit}`, 'x'), isInvalidConfigError)
  }
})

it('class 7: the status socket path', async () => {
  const victims: Array<[string, () => string]> = [
    [
      'regular file',
      () => {
        const p = join(dir, 'file')
        writeFileSync(p, 'x')
        return p
      }
    ],
    [
      'directory',
      () => {
        const p = join(dir, 'adir')
        mkdirSync(p)
        return p
      }
    ],
    [
      'symlink',
      () => {
        const p = join(dir, 'link')
        symlinkSync(join(dir, 'file'), p)
        return p
      }
    ],
    [
      'fifo',
      () => {
        const p = join(dir, 'fifo')
        execFileSync('mkfifo', [p])
        return p
      }
    ]
  ]
  for (const [what, make] of victims) await measure('7 socket path', what, () => prepareStatusSocket(make()), isInvalidConfigError)
  const live = join(dir, 'live.sock')
  const server = createServer()
  await new Promise<void>((r) => server.listen(live, r))
  await measure('7 socket path', 'live socket', () => prepareStatusSocket(live), isInvalidConfigError)
  await new Promise<void>((r) => server.close(() => r()))
})

it('class 8: PeerAssist sizes and distress ids', async () => {
  const service = strictService(PeerAssistService, { maxBytesPerMethod: PEER_ASSIST_MAX_REQUEST_BYTES })
  for (const [method, limit] of Object.entries(PEER_ASSIST_MAX_REQUEST_BYTES)) {
    for (const extra of [...fc.sample(fc.integer({ min: 1, max: 64 * 1024 }), Math.max(3, N / 10)), 4 * 1024 * 1024]) {
      const bytes = Buffer.alloc(limit + extra)
      await measure(
        '8 peer sizes/ids',
        `${method} ${bytes.length} bytes`,
        () => (service as Record<string, { requestDeserialize(b: Buffer): unknown }>)[method]!.requestDeserialize(bytes),
        isInvalidInputError
      )
    }
  }
  for (const id of fc.sample(
    fc.oneof(
      fc.string({ minLength: 65, maxLength: 300 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }).filter((s) => !DISTRESS_ID_PATTERN.test(s))
    ),
    N
  )) {
    await measure(
      '8 peer sizes/ids',
      JSON.stringify(id),
      () => {
        if (!DISTRESS_ID_PATTERN.test(id)) throw new InvalidConfigError('refused', 'distress_id')
      },
      isInvalidConfigError
    )
  }
})

const writeYaml = (text: string): string => {
  const f = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(f, text)
  return f
}
const BASE = `networkId: net1\nnodeId: edge-1\nstateDir: /var/lib/mycelium\n`

it('class 9: values `config validate` passed and `run` then crashed on', async () => {
  const bad = fc.oneof(
    fc
      .string({ minLength: 1, maxLength: 12 })
      .filter((s) => !['error', 'warn', 'info', 'debug'].includes(s))
      .map((v) => `logging:\n  level: ${JSON.stringify(v)}\n`),
    fc
      .string({ minLength: 1, maxLength: 12 })
      .filter((s) => !['json', 'pretty'].includes(s))
      .map((v) => `logging:\n  format: ${JSON.stringify(v)}\n`),
    fc
      .string({ minLength: 1, maxLength: 20 })
      .filter((s) => !/^[a-z0-9.-]+:\d{1,5}$/i.test(s) && s !== 'off')
      .map((v) => `status:\n  httpListenAddress: ${JSON.stringify(v)}\n`),
    fc
      .string({ minLength: 1, maxLength: 20 })
      .filter((s) => !/^2(2[4-9]|3\d)\./.test(s))
      .map((v) => `peers:\n  multicastGroup: ${JSON.stringify(v)}\n`)
  )
  for (const yaml of fc.sample(bad, N))
    await measure('9 validate = run', yaml, () => loadConfig({ file: writeYaml(BASE + yaml) }), isInvalidConfigError)
})

it('class 10: YAML aliases, coerced map values, reserved keys, node ids, relative paths', async () => {
  const reserved = ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'isPrototypeOf']
  const cases: Array<[string, NodeJS.ProcessEnv, string[]]> = []
  for (const key of reserved) {
    cases.push(
      [`${BASE}${key}: x\n`, {}, []],
      [`${BASE}labels:\n  ${key}: x\n`, {}, []],
      [BASE, { [`MYCELIUM_${key.toUpperCase()}`]: 'x' }, []],
      [BASE, {}, [`${key}=x`]],
      [BASE, {}, [`labels.${key}=x`]]
    )
  }
  for (const v of ['[1, 2]', '{ a: b }', '12', 'true', 'null']) cases.push([`${BASE}labels:\n  zone: ${v}\n`, {}, []])
  for (const id of fc.sample(
    fc.string({ maxLength: 80 }).filter((s) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(s)),
    N
  )) {
    cases.push([BASE, { MYCELIUM_NODE_ID: id }, []], [BASE, {}, [`nodeId=${id}`]])
  }
  for (const key of ['stateDir', 'identity.keyFile', 'status.socketPath', 'discovery.bootstrapFile'])
    cases.push([BASE, {}, [`${key}=relative/x`]])
  for (const [text, env, sets] of cases) {
    await measure(
      '10 YAML/keys/ids/paths',
      `${text.slice(BASE.length)} ${JSON.stringify(env)} ${sets.join(' ')}`,
      () => loadConfig({ file: writeYaml(text), env, sets }),
      isInvalidConfigError
    )
  }
  // An alias is resolved, not stringified: that one must load (and is not counted as hostile).
  const c = await loadConfig({ file: writeYaml(`${BASE}labels:\n  zone: &z eu-1\n  rack: *z\n`) })
  expect(c.labels).toEqual({ zone: 'eu-1', rack: 'eu-1' })
})

it('class 11: CLI numbers', async () => {
  const parse = parseWhole(50, 2 ** 31 - 1)
  const bad = fc.oneof(
    fc.constantFrom('NaN', 'Infinity', '-Infinity', '1.5', '1e30', '9007199254740993', '0x10', '', ' ', '-1', 'abc'),
    fc
      .double()
      .map(String)
      .filter((s) => !/^\d+$/.test(s)),
    fc.integer({ min: -(2 ** 40), max: 49 }).map(String),
    fc.bigInt({ min: 2n ** 31n, max: 2n ** 70n }).map(String)
  )
  for (const v of fc.sample(bad, N))
    await measure(
      '11 CLI numbers',
      JSON.stringify(v),
      () => parse(v),
      (err) => (err as Error).name === 'CommanderError' || (err as { code?: string }).code === 'commander.invalidArgument'
    )
})

it('class 12: spore names', async () => {
  const bad = fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: 90 }),
      fc.constantFrom('service/../../etc/passwd', 'service/a\u0000', 'service/netwоrk-manager', `service/${'a'.repeat(1024 * 1024)}`),
      fc.string({ unit: fc.constantFrom('a', '-', '/', '.', 'A', ' ', 'é'), maxLength: 20 }).map((s) => `service/${s}`)
    )
    .filter((name) => !/^(bootstrap|(service|component)\/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/.test(name))
  for (const name of fc.sample(bad, N * 2)) {
    const spore: Spore = {
      ...good(),
      name,
      body: { $case: 'service', value: { service: name.slice(name.indexOf('/') + 1), endpoints: [], contractVersions: undefined } }
    }
    await measure('12 spore names', JSON.stringify(name.slice(0, 40)), verify(signSporeForTest(spore, keys)), malformed)
  }
})

it('class 13: endpoint identity', async () => {
  const wrong = fc.oneof(
    fc.constantFrom('network-manager', 'update-manager', 'x').map((n) => `spiffe://net1/manager/${n}`),
    fc.constant('spiffe://net2/manager/spore-manager'),
    fc.constant('spiffe://net1/node/spore-manager'),
    fc.string({ maxLength: 40 }).filter((s) => s !== '' && !s.startsWith('spiffe://'))
  )
  for (const expected of fc.sample(wrong, N)) {
    await measure(
      '13 endpoint identity',
      expected,
      () => {
        // What a Spore Manager certificate (spiffe://net1/manager/spore-manager) would have to satisfy.
        const required = requirementForEndpoint(
          { address: 'a:1', expectedIdentity: expected, zone: '', priority: 0 },
          { networkId: NET, role: 'manager' }
        )
        if (required.name !== 'spore-manager') throw new InvalidConfigError('a spore-manager certificate is refused', expected)
      },
      (err) => isInvalidConfigError(err) || (err as Error).name === 'PeerIdentityError'
    )
  }
})

it('class 14: records per bundle', async () => {
  for (const count of fc.sample(fc.integer({ min: 1025, max: 600_000 }), Math.max(5, N / 10))) {
    const bytes = Buffer.alloc(count * 2)
    for (let i = 0; i < bytes.length; i += 2) bytes[i] = 0x0a
    await measure('14 records per bundle', `${count} empty records`, () => parseSporeBundle(bytes, 'b.bin'), isInvalidInputError)
  }
  const client = createSporeClient({}, { networkId: NET, trustBundle: testTrustBundle(NET, keys, 2) })
  await measure(
    '14 records per bundle',
    'ingest of 100000',
    () =>
      client.ingest(
        Array.from({ length: 100_000 }, () => ({ spore: Buffer.alloc(0), signatures: [] })),
        'peer'
      ),
    isInvalidInputError
  )
})

afterAll(() => {
  for (const [cls, row] of table) {
    expect([cls, row.accepted, row.crashed, row.examples.slice(0, 3)]).toEqual([cls, 0, 0, []])
  }
})
