import 'reflect-metadata'
import { webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { isInvalidInputError, NETWORK_KEY_ALGORITHM, NETWORK_SIGNATURE_ALGORITHM } from '@mycelium/core-interfaces'
import { CertificateAuthority, parseCsr } from '../src/index.js'

/** A PKCS#10 request for `spiffeId` (as a node makes one; basic-net's createCsr is not a dependency here). */
async function csrFor(spiffeId: string): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey(NETWORK_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=a',
    keys,
    signingAlgorithm: NETWORK_SIGNATURE_ALGORITHM,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])]
  })
  return new Uint8Array(csr.rawData)
}

describe('CertificateAuthority', () => {
  it('issues, from a node CSR, a certificate for its SPIFFE id that chains to the CA', async () => {
    const ca = await CertificateAuthority.create('net1')
    const { certificatePem, spiffeId } = await ca.issueFromCsr(await csrFor('spiffe://net1/node/a'))
    const cert = new X509Certificate(certificatePem)
    expect([spiffeId.role, spiffeId.name, cert.subjectAltName]).toEqual(['node', 'a', 'URI:spiffe://net1/node/a'])
    expect(cert.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true)
  })

  it('writes PEM that ends with a newline, so files concatenate into a bundle', async () => {
    const ca = await CertificateAuthority.create('net1')
    const { certificatePem } = await ca.issueFromCsr(await csrFor('spiffe://net1/node/a'))
    for (const pem of [certificatePem, ca.certificatePem, await ca.privateKeyPem()]) expect(pem).toMatch(/-----\n$/)
    expect((certificatePem + ca.certificatePem).match(/-----BEGIN CERTIFICATE-----\n/g)).toHaveLength(2)
    expect(certificatePem + ca.certificatePem).not.toContain('----------')
  })

  it('refuses to sign for another network, with a typed error', async () => {
    const ca = await CertificateAuthority.create('net1')
    const err = await ca.issueFromCsr(await csrFor('spiffe://net2/node/a')).catch((e: unknown) => e)
    expect(isInvalidInputError(err)).toBe(true)
  })

  it('survives a save and load of its PEM key', async () => {
    const ca = await CertificateAuthority.create('net1')
    const again = await CertificateAuthority.load('net1', ca.certificatePem, await ca.privateKeyPem())
    const { certificatePem } = await again.issueFromCsr(await csrFor('spiffe://net1/manager/m'))
    expect(new X509Certificate(certificatePem).verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true)
  })
})

describe('parseCsr', () => {
  it('refuses bytes that are not a PKCS#10 request, naming where', async () => {
    const err = await parseCsr(Buffer.from('not a csr'), 'EnrollRequest.csr_der').catch((e: unknown) => e)
    expect(isInvalidInputError(err) && (err as Error).message).toMatch(/EnrollRequest.csr_der/)
  })
})
