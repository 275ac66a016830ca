import { generateKeyPairSync } from 'node:crypto'
import { signingKeyId, TrustBundle } from '@mycelium/core-interfaces'
import { operatorKeysOf } from '../src/agent-commands.js'

/** A raw Ed25519 public key (the last 32 bytes of its SPKI DER). */
const rawKey = (): Buffer => generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)

describe('operatorKeysOf (which operator keys commands are checked against, pure)', () => {
  const key = rawKey()
  const bundle = TrustBundle.fromPartial({ networkId: 'net1', operatorKeys: [{ keyId: signingKeyId(key), publicKey: key, label: 'ops' }] })

  it('reads the operator keys of this network’s trust bundle, with a threshold of at least one', () => {
    const keys = operatorKeysOf(bundle, 'net1')
    expect([...(keys?.keys.keys() ?? [])]).toEqual([signingKeyId(key)])
    expect(keys?.threshold).toBe(1)
  })

  it('has none before a trust bundle is known, for another network’s bundle, or for a corrupt key (commands needing them are refused, nothing throws)', () => {
    expect(operatorKeysOf(undefined, 'net1')).toBeUndefined()
    expect(operatorKeysOf(bundle, 'net2')).toBeUndefined()
    const corrupt = TrustBundle.fromPartial({ networkId: 'net1', operatorKeys: [{ keyId: 'not-its-id', publicKey: key, label: '' }] })
    expect(operatorKeysOf(corrupt, 'net1')).toBeUndefined()
  })
})
