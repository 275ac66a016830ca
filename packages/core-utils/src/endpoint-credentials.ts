import type { ChannelCredentials } from '@grpc/grpc-js'
import type { Endpoint } from '@mycelium/core-interfaces'

/**
 * Credentials for dialling a manager endpoint: either one set for every
 * endpoint, or built per endpoint so that its `expected_identity` is
 * enforced (basic-net's `endpointCredentials`). Consumers call
 * `credentialsFor(init.credentials, endpoint)` for each channel they open.
 */
export type EndpointCredentials = ChannelCredentials | ((endpoint: Endpoint) => ChannelCredentials)

export function credentialsFor(credentials: EndpointCredentials, endpoint: Endpoint): ChannelCredentials {
  return typeof credentials === 'function' ? credentials(endpoint) : credentials
}
