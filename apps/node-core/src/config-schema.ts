/**
 * The shape of NodeConfig as the config loader checks it: every key the file,
 * environment and flags may set, with the kind of value it takes. A unit
 * test holds it equal to the generated NodeConfig types, so the contract
 * cannot drift from the loader.
 */
/** `duration`: 1 ms to 2^31-1 ms; `duration-or-zero`: also 0 (a zero slack means none). */
export type Kind =
  'string' | 'number' | 'bool' | 'duration' | 'duration-or-zero' | 'map' | 'strings' | 'k3s-role' | Schema | { list: Schema }
export interface Schema {
  [field: string]: Kind
}

const ENDPOINT: Schema = { address: 'string', expectedIdentity: 'string', zone: 'string', priority: 'number' }

export const NODE_CONFIG_SCHEMA: Schema = {
  version: 'number',
  networkId: 'string',
  nodeId: 'string',
  stateDir: 'string',
  labels: 'map',
  identity: {
    keyFile: 'string',
    certificateFile: 'string',
    caFile: 'string',
    joinToken: 'string',
    joinTokenFile: 'string',
    renewBefore: 'duration',
    enrollmentEndpoints: { list: ENDPOINT }
  },
  discovery: {
    bootstrapFile: 'string',
    httpsUrls: 'strings',
    httpsCaFile: 'string',
    clockSlack: 'duration-or-zero',
    refreshInterval: 'duration',
    sourceTimeout: 'duration'
  },
  peers: {
    listenAddress: 'string',
    seeds: { list: ENDPOINT },
    multicastEnabled: 'bool',
    multicastGroup: 'string',
    multicastInterface: 'string',
    pingInterval: 'duration',
    phiThreshold: 'number'
  },
  handoff: {
    commitDeadline: 'duration',
    configConfirmWindow: 'duration',
    defaultHeartbeatInterval: 'duration',
    missedAcksBeforeFallback: 'number'
  },
  reconnect: { initial: 'duration', max: 'duration', multiplier: 'number' },
  k3s: {
    enabled: 'bool',
    binaryPath: 'string',
    role: 'k3s-role',
    serverUrl: 'string',
    tokenFile: 'string',
    nodeName: 'string',
    nodeLabels: 'map',
    dataDir: 'string',
    enableComponents: 'strings',
    flannelBackend: 'string',
    cniConfDir: 'string',
    cniBinDir: 'string',
    secretsEncryption: 'bool',
    protectKernelDefaults: 'bool',
    extraArgs: 'strings',
    criSocket: 'string',
    defaultLocalStoragePath: 'string'
  },
  status: { socketPath: 'string', grpcListenAddress: 'string', httpListenAddress: 'string', readyInFallback: 'bool' },
  logging: { level: 'string', format: 'string' },
  update: { channel: 'string', watch: 'bool', watchMinInterval: 'duration' }
}
