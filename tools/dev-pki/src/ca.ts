import 'reflect-metadata'
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import {
  InvalidInputError,
  NETWORK_KEY_ALGORITHM as EC,
  NETWORK_SIGNATURE_ALGORITHM as SIGNING,
  parseSpiffeId,
  type SpiffeId
} from '@mycelium/core-interfaces'

// @peculiar/x509 resolves its ASN.1 schemas through tsyringe, which needs the Reflect
// metadata API (the import above only adds functions to `Reflect`). A dev tool loads it
// eagerly; the node's own packages (basic-net) load it on first use.

type CryptoKeyPair = webcrypto.CryptoKeyPair

/** The CA's key pair as WebCrypto keys (sign with the private, name the issuer with the public). */
async function cryptoKeys(privateKey: KeyObject): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle
  return {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']),
    publicKey: await subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), EC, true, ['verify'])
  }
}

/** What a CA learns from a CSR after checking its self-signature. */
export interface ParsedCsr {
  spiffeId: SpiffeId
  spiffeUri: string
  publicKey: x509.PublicKey
}

/** Parses and checks a CSR: valid signature, exactly one SPIFFE URI SAN. Errors name `where`. */
export async function parseCsr(der: Uint8Array, where = 'CSR'): Promise<ParsedCsr> {
  let csr: x509.Pkcs10CertificateRequest
  try {
    csr = new x509.Pkcs10CertificateRequest(Buffer.from(der))
  } catch (err) {
    throw new InvalidInputError(`not a PKCS#10 request: ${(err as Error).message}`, where)
  }
  if (!(await csr.verify())) throw new InvalidInputError('signature does not verify', where)
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension)
  const uris = san?.names.items.filter((n) => n.type === 'url').map((n) => n.value) ?? []
  if (uris.length !== 1) throw new InvalidInputError(`needs exactly one URI SAN, found ${uris.length}`, where)
  return { spiffeId: parseSpiffeId(uris[0]!, `${where} URI SAN`), spiffeUri: uris[0]!, publicKey: csr.publicKey }
}

export interface IssueOptions {
  /** @default now − 60 s (tolerates small clock differences) */
  notBefore?: Date
  /** @default notBefore + 24 h */
  notAfter?: Date
  /**
   * DNS names and IP addresses added beside the SPIFFE URI, so that stock
   * tools checking host names (grpcurl, other gRPC stacks) accept a manager.
   */
  hostNames?: { dns?: string[]; ip?: string[] }
}

/**
 * A network certificate authority: signs node and manager certificates whose
 * only identity is a SPIFFE URI SAN. Used by managers (dev-network) and tests;
 * a node never issues certificates.
 */
export class CertificateAuthority {
  private serial = BigInt(Date.now()) * 1000n

  private constructor(
    readonly networkId: string,
    readonly certificate: x509.X509Certificate,
    private readonly keys: CryptoKeyPair
  ) {}

  /** A new self-signed CA for `networkId`. */
  static async create(networkId: string, options: IssueOptions & { commonName?: string } = {}): Promise<CertificateAuthority> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000)
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: `CN=${options.commonName ?? `${networkId} network CA`}`,
      notBefore,
      notAfter: options.notAfter ?? new Date(notBefore.getTime() + 10 * 365 * 86_400_000),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)
      ]
    })
    return new CertificateAuthority(networkId, certificate, keys)
  }

  /** Loads a CA from its PEM certificate and PKCS#8 PEM key. */
  static async load(networkId: string, certificatePem: string, keyPem: string): Promise<CertificateAuthority> {
    const certificate = new x509.X509Certificate(certificatePem)
    const privateKey = createPrivateKey(keyPem)
    return new CertificateAuthority(networkId, certificate, await cryptoKeys(privateKey))
  }

  /** The CA certificate as PEM (ending with a newline, so PEM files concatenate into bundles). */
  get certificatePem(): string {
    return withNewline(this.certificate.toString('pem'))
  }

  /** The CA's private key as PKCS#8 PEM, for persisting it (mode 0600). */
  async privateKeyPem(): Promise<string> {
    const der = await webcrypto.subtle.exportKey('pkcs8', this.keys.privateKey).catch(() => undefined)
    if (der == null) throw new InvalidInputError('this CA was loaded with a non-extractable key; keep the original PEM', 'CA key')
    return withNewline(x509.PemConverter.encode(der, 'PRIVATE KEY'))
  }

  /** Signs a certificate for `spiffeUri` over `publicKey`. Returns PEM. */
  async issue(spiffeUri: string, publicKey: x509.PublicKey | KeyObject, options: IssueOptions = {}): Promise<string> {
    const id = parseSpiffeId(spiffeUri, 'certificate subject')
    if (id.networkId !== this.networkId) {
      throw new InvalidInputError(`is for network "${id.networkId}", this CA signs for "${this.networkId}"`, 'certificate subject')
    }
    const key = publicKey instanceof x509.PublicKey ? publicKey : new x509.PublicKey(publicKey.export({ type: 'spki', format: 'der' }))
    const notBefore = options.notBefore ?? new Date(Date.now() - 60_000)
    this.serial++
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: this.serial.toString(16).padStart(16, '0'),
      subject: `CN=${id.name}`,
      issuer: this.certificate.subject,
      notBefore,
      notAfter: options.notAfter ?? new Date(notBefore.getTime() + 86_400_000),
      publicKey: key,
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.SubjectAlternativeNameExtension(
          [
            { type: 'url', value: spiffeUri },
            ...(options.hostNames?.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
            ...(options.hostNames?.ip ?? []).map((value) => ({ type: 'ip' as const, value }))
          ],
          true
        ),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey)
      ]
    })
    return withNewline(cert.toString('pem'))
  }

  /** Checks a CSR and issues its certificate. */
  async issueFromCsr(csrDer: Uint8Array, options: IssueOptions = {}): Promise<{ certificatePem: string; spiffeId: SpiffeId }> {
    const csr = await parseCsr(csrDer)
    return { certificatePem: await this.issue(csr.spiffeUri, csr.publicKey, options), spiffeId: csr.spiffeId }
  }
}

/** `pem` ending with exactly one newline. */
const withNewline = (pem: string): string => `${pem.replace(/\s+$/, '')}\n`
