import { SporeBundle, type SignedSpore, type TrustBundle } from '@mycelium/core-interfaces'
import { publicSigningKey, signingKeyFromPem } from '@mycelium/spore-tools'
import type { DevNetworkState } from './state.js'

/** The network's trust bundle: CA, spore keys with threshold, operator keys (1 of n). */
export function trustBundleFor(state: DevNetworkState, caPem: string): TrustBundle {
  return {
    networkId: state.networkId,
    caCertificatesPem: [caPem],
    sporeKeys: state.sporeKeys.map((pem) => publicSigningKey(signingKeyFromPem(pem))),
    sporeThreshold: state.sporeThreshold,
    operatorKeys: state.operatorKeys.map((pem) => publicSigningKey(signingKeyFromPem(pem))),
    operatorThreshold: 1,
    // Dev networks made before release keys existed have none: their updates are trusted on the command.
    releaseKeys: (state.releaseKeys ?? []).map((pem) => publicSigningKey(signingKeyFromPem(pem))),
    releaseThreshold: state.releaseKeys != null && state.releaseKeys.length > 0 ? 1 : 0
  }
}

/** The spores as the JSON SporeBundle a node's bootstrap file holds. */
export function formatSporeBundleJsonForFile(spores: SignedSpore[]): string {
  return `${JSON.stringify(SporeBundle.toJSON({ spores }), null, 2)}\n`
}
