import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { readStateFile, writeStateFile } from '@mycelium/core-utils'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { newSigningKey } from '@mycelium/spore-tools'
import { InvalidInputError } from '@mycelium/core-interfaces'

/**
 * Everything a dev network must keep across restarts of `dev-network up
 * --dir`: its CA, signing keys, join tokens, enrolled nodes, spore sequences
 * and ports. One checksummed state file, written atomically.
 */
export interface DevNetworkState {
  format: 1
  networkId: string
  ca: { certificatePem: string; keyPem: string }
  /** Ed25519 PKCS#8 PEMs. */
  sporeKeys: string[]
  sporeThreshold: number
  operatorKeys: string[]
  /** Release keys (1 of n signs a release manifest); absent in state dirs made before them. */
  releaseKeys?: string[]
  joinTokens: Array<{ tokenId: string; secret: string; usedBy?: string }>
  sequences: Record<string, number>
  nodes: Record<string, { enrolledAt: string; certificateSerial: string }>
  ports: { networkManager?: number; enrollment?: number; sporeManager?: number }
  configVersion: number
}

export const STATE_FILE = 'dev-network.state'

const randomId = (bytes: number): string => randomBytes(bytes).toString('hex')

export function newJoinTokenSecret(): { tokenId: string; secret: string } {
  return { tokenId: randomId(4), secret: randomId(16) }
}

export async function createState(networkId: string, sporeKeyCount = 3, sporeThreshold = 2): Promise<DevNetworkState> {
  const ca = await CertificateAuthority.create(networkId)
  return {
    format: 1,
    networkId,
    ca: { certificatePem: ca.certificatePem, keyPem: await ca.privateKeyPem() },
    sporeKeys: Array.from({ length: sporeKeyCount }, () => newSigningKey().pem),
    sporeThreshold,
    operatorKeys: [newSigningKey().pem],
    releaseKeys: [newSigningKey().pem],
    joinTokens: [newJoinTokenSecret()],
    sequences: {},
    nodes: {},
    ports: {},
    configVersion: 1
  }
}

export async function loadState(dir: string): Promise<DevNetworkState | undefined> {
  const content = await readStateFile(join(dir, STATE_FILE))
  if (content == null) return undefined
  const state = JSON.parse(content.data.toString('utf8')) as DevNetworkState
  if (state.format !== 1) throw new InvalidInputError(`unsupported format ${String(state.format)}`, join(dir, STATE_FILE))
  return state
}

/** Writes in flight per directory: a stop waits for them before it removes the directory. */
const inFlight = new Map<string, Set<Promise<void>>>()

export function saveState(dir: string, state: DevNetworkState): Promise<void> {
  const writes = inFlight.get(dir) ?? new Set<Promise<void>>()
  inFlight.set(dir, writes)
  const write = writeStateFile(join(dir, STATE_FILE), Buffer.from(JSON.stringify(state, null, 2))).finally(() => {
    writes.delete(write)
    if (writes.size === 0) inFlight.delete(dir)
  })
  writes.add(write)
  return write
}

/** Resolves once every state write into `dir` started so far has ended (a write racing a removal fails it: ENOTEMPTY). */
export async function stateWritesSettled(dir: string): Promise<void> {
  await Promise.allSettled([...(inFlight.get(dir) ?? [])])
}
