import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IdentityState, isInvalidInputError, silentLogger } from '@mycelium/core-interfaces'
import { createIdentityStore, inspectIdentity } from '../src/index.js'
import { CertificateAuthority, parseCsr } from '@mycelium/dev-pki'
import { rawIdentity, tempDir } from './helpers/pki.js'

const NET = 'net1'
const DAY = 86_400_000
let ca: CertificateAuthority
let tmp: ReturnType<typeof tempDir>

beforeAll(async () => {
  ca = await CertificateAuthority.create(NET)
  tmp = tempDir('basic-net-id-')
})
afterAll(() => tmp.cleanup())

async function material(spiffe: string, validity: { notBefore?: Date; notAfter?: Date } = {}, issuer = ca) {
  const m = await rawIdentity(issuer, spiffe, validity)
  return { keyPem: m.keyPem.toString(), certificateChainPem: m.certPem.toString(), caPem: ca.certificatePem }
}

describe('inspectIdentity', () => {
  const opts = { networkId: NET, role: 'node' as const, name: 'n1' }

  it('reports a good identity as VALID with its SPIFFE id and expiry', async () => {
    const r = inspectIdentity(await material('spiffe://net1/node/n1'), opts)
    expect(r).toMatchObject({ state: IdentityState.VALID, usable: true, spiffeId: { networkId: NET, role: 'node', name: 'n1' } })
    expect(r.certificateSha256).toMatch(/^[0-9a-f]{64}$/)
  })

  it.each([
    ['expired', { notBefore: new Date(Date.now() - 2 * DAY), notAfter: new Date(Date.now() - DAY) }, IdentityState.EXPIRED, 'expired at'],
    [
      'not yet valid',
      { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 2 * DAY) },
      IdentityState.NOT_YET_VALID,
      'not valid before'
    ],
    [
      'due for renewal',
      { notBefore: new Date(Date.now() - 20 * DAY), notAfter: new Date(Date.now() + DAY) },
      IdentityState.RENEWAL_DUE,
      'renewal due'
    ]
  ])('reports a certificate %s as a clear state', async (_w, validity, state, reason) => {
    const r = inspectIdentity(await material('spiffe://net1/node/n1', validity), opts)
    expect(r.state).toBe(state)
    expect(r.reason).toContain(reason)
  })

  it('finds a key that does not match the certificate', async () => {
    const m = await material('spiffe://net1/node/n1')
    m.keyPem = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    expect(inspectIdentity(m, opts)).toMatchObject({
      state: IdentityState.INVALID,
      reason: 'the private key does not match the certificate'
    })
  })

  it('finds a certificate from another CA', async () => {
    const other = await CertificateAuthority.create(NET)
    const r = inspectIdentity(await material('spiffe://net1/node/n1', {}, other), opts)
    expect(r.state).toBe(IdentityState.INVALID)
    expect(r.reason).toContain('not signed by the network CA')
  })

  it('finds a certificate for another network, role or node', async () => {
    const net2 = await CertificateAuthority.create('net2')
    const wrongNet = await material('spiffe://net2/node/n1', {}, net2)
    wrongNet.caPem = net2.certificatePem
    expect(inspectIdentity(wrongNet, opts).reason).toContain('belongs to network "net2", not "net1"')
    expect(inspectIdentity(await material('spiffe://net1/manager/network-manager'), opts).reason).toContain('is a manager identity')
    expect(inspectIdentity(await material('spiffe://net1/node/n2'), opts).reason).toContain('not the expected node "n1"')
  })
})

describe('identity store', () => {
  it('creates the key 0600 on first start, reports MISSING, enrols through a CSR, and refuses bad material', async () => {
    const dir = join(tmp.dir, 'store')
    const store = createIdentityStore(
      {},
      { networkId: NET, name: 'n1', keyFile: join(dir, 'node.key'), certificateFile: join(dir, 'node.crt'), caFile: join(dir, 'ca.crt') }
    )
    await store.start()
    try {
      expect(statSync(join(dir, 'node.key')).mode & 0o777).toBe(0o600)
      expect(store.report().state).toBe(IdentityState.MISSING)
      expect(store.report().reason).toContain('enrolment needed')
      const csr = await parseCsr(await store.createCsr())
      expect(csr.spiffeUri).toBe('spiffe://net1/node/n1')

      // A certificate for another key is refused and nothing is written.
      const stranger = await rawIdentity(ca, 'spiffe://net1/node/n1')
      const err = await store.install(stranger.certPem.toString(), ca.certificatePem).catch((e: unknown) => e)
      expect(isInvalidInputError(err)).toBe(true)
      expect((err as Error).message).toContain('does not match')
      expect(() => statSync(join(dir, 'node.crt'))).toThrow()

      const { certificatePem } = await ca.issueFromCsr(await store.createCsr())
      const report = await store.install(certificatePem, ca.certificatePem)
      expect(report.state).toBe(IdentityState.VALID)
      expect(store.material()?.certificateChainPem).toBe(certificatePem)

      // A corrupted certificate file is reported; the material in force stays.
      writeFileSync(join(dir, 'node.crt'), 'garbage')
      const broken = await store.reload()
      expect(broken.state).toBe(IdentityState.INVALID)
      expect(store.material()?.certificateChainPem).toBe(certificatePem)
    } finally {
      store.stop()
    }
  })

  it('judges unchanged material by the clock at every reload, and examines changed material again', async () => {
    const dir = join(tmp.dir, 'store-clock')
    let nowMs = Date.now()
    const store = createIdentityStore(
      {},
      {
        networkId: NET,
        name: 'n1',
        keyFile: join(dir, 'node.key'),
        certificateFile: join(dir, 'node.crt'),
        caFile: join(dir, 'ca.crt'),
        now: () => nowMs
      }
    )
    await store.start()
    try {
      const { certificatePem } = await ca.issueFromCsr(await store.createCsr())
      const installed = await store.install(certificatePem, ca.certificatePem)
      expect(installed.state).toBe(IdentityState.VALID)
      const notAfter = installed.notAfter!.getTime()

      // The files do not change; only the clock moves: renewal due, then expired, then (clock back) valid.
      nowMs = notAfter - 1000
      expect((await store.reload()).state).toBe(IdentityState.RENEWAL_DUE)
      nowMs = notAfter + 1000
      const expired = await store.reload()
      expect(expired.state).toBe(IdentityState.EXPIRED)
      expect(expired.usable).toBe(false)
      nowMs = Date.now()
      expect((await store.reload()).state).toBe(IdentityState.VALID)

      // The certificate file is replaced by one for another key: examined again, and refused.
      const stranger = await rawIdentity(ca, 'spiffe://net1/node/n1')
      writeFileSync(join(dir, 'node.crt'), stranger.certPem)
      const changed = await store.reload()
      expect(changed.state).toBe(IdentityState.INVALID)
      expect(changed.reason).toContain('does not match')
      // And the good one back: valid again.
      writeFileSync(join(dir, 'node.crt'), certificatePem)
      expect((await store.reload()).state).toBe(IdentityState.VALID)
    } finally {
      store.stop()
    }
  })

  it('two concurrent starts on a fresh node generate one key, the one on disk', async () => {
    const dir = join(tmp.dir, 'store-concurrent')
    const generated: string[] = []
    const logger = silentLogger()
    const recording = { ...logger, info: (msg: string) => generated.push(msg), forComponent: () => recording, child: () => recording }
    const store = createIdentityStore(
      { logger: recording },
      { networkId: NET, name: 'n1', keyFile: join(dir, 'node.key'), certificateFile: join(dir, 'node.crt'), caFile: join(dir, 'ca.crt') }
    )
    await Promise.all([store.start(), store.start()])
    try {
      expect(generated.filter((m) => m === 'generated a new identity key')).toHaveLength(1)
      // The CSR is signed by the key on disk (not by a second key generated and overwritten).
      const csr = await parseCsr(await store.createCsr())
      const onDisk = createPublicKey(readFileSync(join(dir, 'node.key'), 'utf8')).export({ type: 'spki', format: 'der' })
      expect(Buffer.from(csr.publicKey.rawData).equals(onDisk)).toBe(true)
    } finally {
      store.stop()
    }
  })

  it('a CSR for another network is refused by the CA', async () => {
    const dir = join(tmp.dir, 'other')
    const store = createIdentityStore(
      {},
      { networkId: 'net9', name: 'n1', keyFile: join(dir, 'k'), certificateFile: join(dir, 'c'), caFile: join(dir, 'a') }
    )
    await store.start()
    const err = await ca.issueFromCsr(await store.createCsr()).catch((e: unknown) => e)
    store.stop()
    expect((err as Error).message).toContain('is for network "net9", this CA signs for "net1"')
  })
})
