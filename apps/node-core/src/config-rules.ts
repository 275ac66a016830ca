import { isIP } from 'node:net'
import { isAbsolute } from 'node:path'
import { InvalidConfigError, isValidIdLabel, parseSpiffeId, type Endpoint, type NodeConfig } from '@mycelium/core-interfaces'

/**
 * The rules a NodeConfig must follow beyond its types, checked once by
 * `loadConfig` — so `config validate`, `run`, `identity` and `recover` all
 * refuse the same things, before anything is written. Each error names the
 * key and where it came from.
 */

/** Longest delay a Node.js timer holds (setTimeout overflows beyond it and fires after 1 ms). */
export { MAX_TIMER_MS } from '@mycelium/core-interfaces'
/** Log levels node-core's logger knows. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
/** Log formats: JSON lines or human-readable text. */
export const LOG_FORMATS = ['json', 'pretty'] as const

/**
 * Keys a map (labels, k3s.nodeLabels) may use: a Kubernetes-style label key
 * (optional DNS prefix and "/"), never a name Object.prototype owns
 * (`constructor`, `toString`, `__proto__`...), which would reach objects
 * built from the map.
 */
const MAP_KEY = /^(?:[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/
export function mapKeyProblem(key: string): string | undefined {
  if (key === '__proto__' || Object.prototype.hasOwnProperty.call(Object.prototype, key)) return `key "${key}" is reserved`
  if (!MAP_KEY.test(key)) return `key ${JSON.stringify(key)} is not a label key (letters, digits, "-", "_", "." and an optional "prefix/")`
  return undefined
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/** Why `value` is not "host:port" (IPv4, [IPv6] or a host name; port 0–65535), or undefined. */
export function hostPortProblem(value: string): string | undefined {
  const m = /^(\[([^\]]+)\]|[^:[\]]+):(\d{1,5})$/.exec(value)
  if (m == null) return `"${value}" is not host:port (IPv6 as [addr]:port)`
  const host = m[2] ?? m[1]!
  const port = Number(m[3])
  if (port > 65535) return `port ${port} of "${value}" is above 65535`
  if (m[2] != null ? isIP(host) !== 6 : isIP(host) !== 4 && !HOSTNAME.test(host))
    return `"${host}" in "${value}" is not an IP address or host name`
  return undefined
}

/** Why `value` is not a multicast group "ip" or "ip:port", or undefined. */
export function multicastGroupProblem(value: string): string | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(value)
  if (m == null || isIP(m[1]!) !== 4) return `"${value}" is not an IPv4 multicast group like 239.77.0.1 or 239.77.0.1:7946`
  const first = Number(m[1]!.split('.')[0])
  if (first < 224 || first > 239) return `"${m[1]}" is not a multicast address (224.0.0.0–239.255.255.255)`
  if (m[2] != null && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return `port ${m[2]} is not 1–65535`
  return undefined
}

function checkEndpoint(e: Endpoint, where: string, fail: (m: string, w: string) => never): void {
  const problem = hostPortProblem(e.address)
  if (problem != null) fail(problem, `${where}.address`)
  if (e.expectedIdentity !== '') {
    try {
      parseSpiffeId(e.expectedIdentity)
    } catch (err) {
      fail((err as Error).message, `${where}.expectedIdentity`)
    }
  }
  if (!Number.isInteger(e.priority) || e.priority < 0 || e.priority > 2 ** 32 - 1)
    fail(`must be a whole number 0–4294967295, not ${e.priority}`, `${where}.priority`)
}

/** Throws InvalidConfigError (naming `source` and the key) for the first rule `config` breaks. */
export function validateNodeConfig(config: NodeConfig, source: string): void {
  const fail = (message: string, key: string): never => {
    throw new InvalidConfigError(message, `${source} ${key}`)
  }
  for (const [key, value] of [
    ['networkId', config.networkId],
    ['nodeId', config.nodeId]
  ] as const) {
    if (value === '') fail('is required', key)
    if (!isValidIdLabel(value))
      fail(
        `${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)} is not 1–63 of a-z, 0-9 and "-" (starting and ending with a letter or digit)`,
        key
      )
  }
  const paths: Array<[string, string | undefined]> = [
    ['stateDir', config.stateDir],
    ['identity.keyFile', config.identity?.keyFile],
    ['identity.certificateFile', config.identity?.certificateFile],
    ['identity.caFile', config.identity?.caFile],
    ['identity.joinTokenFile', config.identity?.joinTokenFile],
    ['discovery.bootstrapFile', config.discovery?.bootstrapFile],
    ['discovery.httpsCaFile', config.discovery?.httpsCaFile],
    // "off": no socket (status.grpcListenAddress may still serve).
    ['status.socketPath', config.status?.socketPath === 'off' ? undefined : config.status?.socketPath]
  ]
  for (const [key, path] of paths) {
    if (path == null || path === '') continue
    if (path.includes('\0')) fail('contains a NUL byte', key)
    if (!isAbsolute(path))
      fail(`"${path}" is relative; an absolute path is required (the daemon's working directory is not the operator's)`, key)
  }
  if (config.logging != null) {
    const { level, format } = config.logging
    if (level !== '' && !(LOG_LEVELS as readonly string[]).includes(level))
      fail(`"${level}" is not one of ${LOG_LEVELS.join(', ')}`, 'logging.level')
    if (format !== '' && !(LOG_FORMATS as readonly string[]).includes(format))
      fail(`"${format}" is not one of ${LOG_FORMATS.join(', ')}`, 'logging.format')
  }
  const addresses: Array<[string, string | undefined, string[]]> = [
    ['status.httpListenAddress', config.status?.httpListenAddress, ['', 'off']],
    ['status.grpcListenAddress', config.status?.grpcListenAddress, ['']],
    ['peers.listenAddress', config.peers?.listenAddress, ['']]
  ]
  for (const [key, value, allowed] of addresses) {
    if (value == null || allowed.includes(value)) continue
    const problem = hostPortProblem(value)
    if (problem != null) fail(problem, key)
  }
  if (config.peers != null) {
    const { multicastGroup, multicastInterface, phiThreshold, seeds } = config.peers
    if (multicastGroup !== '') {
      const problem = multicastGroupProblem(multicastGroup)
      if (problem != null) fail(problem, 'peers.multicastGroup')
    }
    if (multicastInterface !== '' && isIP(multicastInterface) === 0)
      fail(`"${multicastInterface}" is not an IP address`, 'peers.multicastInterface')
    if (!(phiThreshold >= 0 && phiThreshold <= 1000))
      fail(`must be between 0 (default) and 1000, not ${phiThreshold}`, 'peers.phiThreshold')
    seeds.forEach((e, i) => checkEndpoint(e, `peers.seeds[${i}]`, fail))
  }
  config.identity?.enrollmentEndpoints.forEach((e, i) => checkEndpoint(e, `identity.enrollmentEndpoints[${i}]`, fail))
  config.discovery?.httpsUrls.forEach((url, i) => {
    let parsed: URL | undefined
    try {
      parsed = new URL(url)
    } catch {
      parsed = undefined
    }
    if (parsed?.protocol !== 'https:') fail(`"${url}" is not an https:// URL`, `discovery.httpsUrls[${i}]`)
  })
  if (config.handoff != null) {
    const n = config.handoff.missedAcksBeforeFallback
    if (!Number.isInteger(n) || n > 1000) fail(`must be a whole number 0 (default) to 1000, not ${n}`, 'handoff.missedAcksBeforeFallback')
  }
  if (config.reconnect != null) {
    const m = config.reconnect.multiplier
    if (m !== 0 && !(m >= 1 && m <= 100)) fail(`must be 0 (default) or 1–100, not ${m}`, 'reconnect.multiplier')
  }
  if (!Number.isSafeInteger(config.version)) fail(`must be a whole number, not ${config.version}`, 'version')
}
