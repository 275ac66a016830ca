import { generateKeyPairSync, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidInputError, signingKeyId, type SigningKey } from '@mycelium/core-interfaces'

/** The public half as operators share it (JSON file beside the private key). */
export interface PublicKeyFile {
  keyId: string
  /** Raw Ed25519 public key, base64. */
  publicKey: string
  label: string
}

export interface GeneratedKey {
  keyId: string
  privateKeyPath: string
  publicKeyPath: string
}

function rawPublicKey(key: KeyObject): Buffer {
  // The raw key is the last 32 bytes of an Ed25519 SubjectPublicKeyInfo.
  return createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(-32)
}

/** Generates an Ed25519 signing key: `<label>.key` (PKCS#8 PEM, 0600) and `<label>.pub.json`. */
export async function generateSigningKey(dir: string, label: string): Promise<GeneratedKey> {
  const { privateKey } = generateKeyPairSync('ed25519')
  const raw = rawPublicKey(privateKey)
  const keyId = signingKeyId(raw)
  await mkdir(dir, { recursive: true })
  const privateKeyPath = join(dir, `${label}.key`)
  const publicKeyPath = join(dir, `${label}.pub.json`)
  // 'wx': never overwrite an existing key by accident.
  await writeFile(privateKeyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' })
  const pub: PublicKeyFile = { keyId, publicKey: raw.toString('base64'), label }
  await writeFile(publicKeyPath, `${JSON.stringify(pub, null, 2)}\n`, { flag: 'wx' })
  return { keyId, privateKeyPath, publicKeyPath }
}

/** A private signing key with its id. */
export interface SigningPrivateKey {
  keyId: string
  privateKey: KeyObject
}

export async function loadPrivateKey(path: string): Promise<SigningPrivateKey> {
  let pem: Buffer
  try {
    pem = await readFile(path)
  } catch (err) {
    throw new InvalidInputError(`not a readable private key: ${(err as Error).message}`, path)
  }
  return signingKeyFromPem(pem, path)
}

/** A signing key from PKCS#8 PEM (Ed25519 only); errors name `where`. */
export function signingKeyFromPem(pem: string | Buffer, where = 'signing key'): SigningPrivateKey {
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(pem)
  } catch (err) {
    throw new InvalidInputError(`not a private key: ${(err as Error).message}`, where)
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new InvalidInputError(`is a ${privateKey.asymmetricKeyType} key; spores are signed with Ed25519`, where)
  }
  return { keyId: signingKeyId(rawPublicKey(privateKey)), privateKey }
}

/** A new Ed25519 signing key in memory, with its PKCS#8 PEM for storing. */
export function newSigningKey(): SigningPrivateKey & { pem: string } {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
  return { ...signingKeyFromPem(pem), pem }
}

/** The public half as a trust bundle lists it. */
export function publicSigningKey(key: SigningPrivateKey, label = ''): SigningKey {
  const raw = rawPublicKey(key.privateKey)
  return { keyId: signingKeyId(raw), publicKey: raw, label }
}

export async function loadPublicKey(path: string): Promise<SigningKey> {
  let parsed: Partial<PublicKeyFile>
  try {
    parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<PublicKeyFile>
  } catch (err) {
    throw new InvalidInputError(`not a public key file: ${(err as Error).message}`, path)
  }
  if (typeof parsed !== 'object' || parsed == null || typeof parsed.publicKey !== 'string' || typeof parsed.keyId !== 'string') {
    throw new InvalidInputError('not a public key file: needs "keyId" and "publicKey" strings', path)
  }
  const raw = Buffer.from(parsed.publicKey, 'base64')
  if (raw.length !== 32) throw new InvalidInputError('publicKey must be 32 bytes of base64', path)
  if (parsed.keyId !== signingKeyId(raw)) throw new InvalidInputError(`keyId does not match publicKey`, path)
  return { keyId: parsed.keyId, publicKey: raw, label: typeof parsed.label === 'string' ? parsed.label : '' }
}
