import { createPublicKey, webcrypto, X509Certificate, type KeyObject } from 'node:crypto'
import type * as X509 from '@peculiar/x509'

type CryptoKeyPair = webcrypto.CryptoKeyPair

let loaded: Promise<typeof X509> | undefined

/**
 * @peculiar/x509 is loaded on first use (enrolment, renewal): a running
 * node never needs it otherwise, and it costs ~15 MB of memory. It resolves
 * its ASN.1 schemas through tsyringe, which needs the Reflect metadata API;
 * the polyfill only adds functions to `Reflect`.
 */
function loadX509(): Promise<typeof X509> {
  loaded ??= (async () => {
    await import('reflect-metadata')
    return import('@peculiar/x509')
  })()
  return loaded
}
import {
  InvalidInputError,
  NETWORK_KEY_ALGORITHM as EC,
  NETWORK_SIGNATURE_ALGORITHM as SIGNING,
  parseSpiffeId
} from '@mycelium/core-interfaces'

async function cryptoKeys(privateKey: KeyObject): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle
  return {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']),
    publicKey: await subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), EC, true, ['verify'])
  }
}

/** A PKCS#10 request (DER) for `spiffeId`, signed by the node's key; the key never leaves the node. */
export async function createCsr(privateKey: KeyObject, spiffeId: string): Promise<Buffer> {
  const id = parseSpiffeId(spiffeId, 'CSR subject')
  const x509 = await loadX509()
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${id.name}`,
    keys: await cryptoKeys(privateKey),
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])]
  })
  return Buffer.from(csr.rawData)
}

/** Splits a PEM bundle into Node X509Certificates, naming `where` on failure. */
export function parseCertificates(pem: string, where: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) throw new InvalidInputError('contains no PEM certificate', where)
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch (err) {
      throw new InvalidInputError(`certificate ${i + 1} does not parse: ${(err as Error).message}`, where)
    }
  })
}
