import { generateKeyPairSync } from 'node:crypto'
import { resolve } from 'node:path'
import { Readable } from 'node:stream'
import { IdentityState, isInvalidInputError } from '@mycelium/core-interfaces'
import { CertificateAuthority, parseCsr } from '@mycelium/dev-pki'
import { createIdentityStore, csrInChildProcess, serveCsrRequest } from '../src/index.js'
import { tempDir } from './helpers/pki.js'

/**
 * CSRs made in a real child process. The child is this package's build
 * (dist, as the daemon ships it), run by node from the package directory.
 */
const PACKAGE_DIR = resolve(__dirname, '..')
const SERVE = `require('@mycelium/basic-net').serveCsrRequest(process.stdin, process.stdout).catch((e) => { process.stderr.write(e.message); process.exit(2) })`
const serving = (script = SERVE): string[] => [process.execPath, '-e', `process.chdir(${JSON.stringify(PACKAGE_DIR)}); ${script}`]

let ca: CertificateAuthority
let tmp: ReturnType<typeof tempDir>
beforeAll(async () => {
  ca = await CertificateAuthority.create('net1')
  tmp = tempDir('basic-net-csr-child-')
})
afterAll(() => tmp.cleanup())

const key = (): ReturnType<typeof generateKeyPairSync>['privateKey'] => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey

describe('csrInChildProcess', () => {
  it('an identity store enrols with CSRs made in a child: signed by its key, for its SPIFFE id, installable', async () => {
    const store = createIdentityStore(
      { makeCsr: csrInChildProcess(serving()) },
      {
        networkId: 'net1',
        name: 'n1',
        keyFile: `${tmp.dir}/n1.key`,
        certificateFile: `${tmp.dir}/n1.crt`,
        caFile: `${tmp.dir}/ca.crt`
      }
    )
    await store.start()
    try {
      const csr = await store.createCsr()
      // dev-pki verifies the request's signature and reads its one URI SAN.
      expect((await parseCsr(csr)).spiffeUri).toBe('spiffe://net1/node/n1')
      const { certificatePem } = await ca.issueFromCsr(csr)
      // install checks the certificate against the store's own key: the child signed with that key.
      expect((await store.install(certificatePem, ca.certificatePem)).state).toBe(IdentityState.VALID)
    } finally {
      store.stop()
    }
  })

  it('a child that refuses the request: an error naming the command, its exit code and what it printed', async () => {
    const make = csrInChildProcess(serving())
    const err = await make(key(), 'not-a-spiffe-id').catch((e: unknown) => e as Error)
    expect(err).toMatchObject({ name: 'CsrChildError' })
    expect((err as Error).message).toMatch(/^making the CSR in a child process \(.+\) failed: exited with 2: .*not-a-spiffe-id/)
  })

  it('a child that never answers is killed after the timeout', async () => {
    const make = csrInChildProcess([process.execPath, '-e', 'setInterval(() => {}, 1000)'], { timeoutMs: 300 })
    await expect(make(key(), 'spiffe://net1/node/n1')).rejects.toThrow(/failed: did not answer within 300 ms$/)
  })

  it('a child that exits 0 without a CSR, or a command that does not exist, is an error', async () => {
    await expect(csrInChildProcess([process.execPath, '-e', '0'])(key(), 'spiffe://net1/node/n1')).rejects.toThrow(/failed: wrote no CSR$/)
    await expect(csrInChildProcess([`${tmp.dir}/no-such-node`])(key(), 'spiffe://net1/node/n1')).rejects.toThrow(
      /failed: spawn .*no-such-node ENOENT$/
    )
  })
})

describe('serveCsrRequest', () => {
  const serve = async (input: string): Promise<unknown> => {
    const chunks: Buffer[] = []
    const output = new (await import('node:stream')).Writable({
      write: (c: Buffer, _e, cb) => {
        chunks.push(c)
        cb()
      }
    })
    return serveCsrRequest(Readable.from([Buffer.from(input)]), output).then(
      () => Buffer.concat(chunks),
      (e: unknown) => e
    )
  }

  it.each([
    ['not JSON', 'hello', /^stdin: is not a JSON CSR request/],
    ['not an object', '42', /^stdin: is not a JSON object/],
    ['without an id', '{}', /^stdin: has no "spiffeId" string/],
    ['no key', '{"spiffeId":"spiffe://net1/node/n1"}', /^stdin: has no "keyPem" string/],
    [
      'a key that is not one',
      '{"spiffeId":"spiffe://net1/node/n1","keyPem":"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"}',
      /^stdin: "keyPem" is not a private key/
    ],
    ['too long', 'x'.repeat(70_000), /^stdin: is longer than 65536 bytes/]
  ])('refuses a request that is %s, naming what is wrong', async (_what, input, message) => {
    const err = await serve(input)
    expect(isInvalidInputError(err)).toBe(true)
    expect(String((err as Error).message)).toMatch(message)
  })

  it('answers a good request with the DER of a CSR', async () => {
    const keyPem = key().export({ type: 'pkcs8', format: 'pem' }).toString()
    const der = (await serve(JSON.stringify({ spiffeId: 'spiffe://net1/node/n2', keyPem }))) as Buffer
    expect((await parseCsr(der)).spiffeUri).toBe('spiffe://net1/node/n2')
  })
})
