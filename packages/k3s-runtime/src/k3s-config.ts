import { stringify } from 'yaml'
import { InvalidConfigError, K3sRole, type K3sConfig } from '@mycelium/core-interfaces'

/** Packaged components the stripped-down profile disables unless asked for. */
export const STRIPPED_COMPONENTS = ['traefik', 'servicelb', 'metrics-server', 'local-storage'] as const
/** Controllers disabled by their own flags unless asked for. */
const OPTIONAL_CONTROLLERS = { 'helm-controller': 'disable-helm-controller', 'cloud-controller': 'disable-cloud-controller' } as const

/** What K3s is asked to run: its role and the content of its config.yaml. */
export interface RenderedK3s {
  role: 'server' | 'agent'
  /** Keys of /etc/rancher/k3s/config.yaml (K3s flags without "--"). */
  config: Record<string, unknown>
  /** Binary to run (configured path, else found on PATH). */
  binary: string
  /** Extra arguments, appended as-is after `k3s <role>`. */
  extraArgs: string[]
}

/**
 * Derives K3s's config from NodeConfig.k3s. Stripped down by default:
 * traefik, servicelb, metrics-server, local-storage, the helm controller and
 * the cloud controller are off unless listed in `enableComponents`.
 * `flannelBackend: none` means a custom CNI (K3s's network policy controller
 * goes too). Server-only keys are never given to an agent.
 */
export function renderK3s(k3s: K3sConfig, nodeId: string, binary: string, paths: { kubeconfig?: string } = {}): RenderedK3s {
  const role = k3s.role === K3sRole.AGENT ? 'agent' : 'server'
  const enabled = new Set(k3s.enableComponents)
  const config: Record<string, unknown> = {
    'node-name': k3s.nodeName || nodeId,
    ...(k3s.dataDir ? { 'data-dir': k3s.dataDir } : {}),
    ...(k3s.serverUrl ? { server: k3s.serverUrl } : {}),
    ...(k3s.tokenFile ? { 'token-file': k3s.tokenFile } : {}),
    ...(Object.keys(k3s.nodeLabels).length > 0
      ? {
          'node-label': Object.entries(k3s.nodeLabels)
            .sort()
            .map(([k, v]) => `${k}=${v}`)
        }
      : {}),
    ...(k3s.protectKernelDefaults ? { 'protect-kernel-defaults': true } : {})
  }
  // Custom CNI locations: K3s takes them as kubelet args and configures its
  // embedded containerd from the same values.
  const kubeletArgs = [
    ...(k3s.cniConfDir ? [`cni-conf-dir=${k3s.cniConfDir}`] : []),
    ...(k3s.cniBinDir ? [`cni-bin-dir=${k3s.cniBinDir}`] : [])
  ]
  if (kubeletArgs.length > 0) config['kubelet-arg'] = kubeletArgs
  if (role === 'server') {
    const disable = STRIPPED_COMPONENTS.filter((c) => !enabled.has(c))
    if (disable.length > 0) config.disable = disable
    for (const [component, flag] of Object.entries(OPTIONAL_CONTROLLERS)) if (!enabled.has(component)) config[flag] = true
    if (k3s.flannelBackend) config['flannel-backend'] = k3s.flannelBackend
    if (k3s.flannelBackend === 'none') config['disable-network-policy'] = true
    if (k3s.secretsEncryption) config['secrets-encryption'] = true
    if (enabled.has('local-storage') && k3s.defaultLocalStoragePath) config['default-local-storage-path'] = k3s.defaultLocalStoragePath
    // Under the core's state dir rather than /etc/rancher: readiness and the API view read it.
    if (paths.kubeconfig) config['write-kubeconfig'] = paths.kubeconfig
    config['write-kubeconfig-mode'] = '0600'
  }
  return { role, config, binary, extraArgs: [...k3s.extraArgs] }
}

/** config.yaml text, keys in a stable order so equal configs are equal bytes. */
export function k3sConfigYaml(rendered: RenderedK3s): string {
  const sorted = Object.fromEntries(Object.entries(rendered.config).sort(([a], [b]) => a.localeCompare(b)))
  return `# Written by the Mycelium core from NodeConfig.k3s; edits are overwritten.\n${stringify(sorted)}`
}

const FLANNEL_BACKENDS = ['vxlan', 'host-gw', 'wireguard-native', 'none']
const OPTIONAL_COMPONENTS = [...STRIPPED_COMPONENTS, ...Object.keys(OPTIONAL_CONTROLLERS)]
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/

/** Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 characters. */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/')
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined
  const name = slash >= 0 ? key.slice(slash + 1) : key
  if (prefix != null && !DNS_SUBDOMAIN.test(prefix)) return `label key "${key}": prefix must be a DNS subdomain`
  if (!LABEL_NAME.test(name)) return `label key "${key}": name must be 1-63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`
  return undefined
}

/**
 * Checks what K3s would otherwise only refuse at start (or, worse, accept
 * wrongly): agents without a server or token, unknown flannel backends or
 * components, CNI dirs without `flannelBackend: none`, relative paths,
 * invalid Kubernetes labels. Throws InvalidConfigError naming the key under
 * `where` (e.g. "node.yaml k3s"). Nothing is checked while k3s is disabled.
 */
export function validateK3sConfig(k3s: K3sConfig, where: string): void {
  if (!k3s.enabled) return
  const fail = (key: string, message: string): never => {
    throw new InvalidConfigError(message, `${where}.${key}`)
  }
  if (k3s.role === K3sRole.AGENT) {
    if (!k3s.serverUrl) fail('serverUrl', 'is required when role is agent (the K3s server to join)')
    if (!k3s.tokenFile) fail('tokenFile', 'is required when role is agent (the cluster join token)')
  }
  if (k3s.serverUrl) {
    let url: URL | undefined
    try {
      url = new URL(k3s.serverUrl)
    } catch {
      fail('serverUrl', `"${k3s.serverUrl}" is not a URL`)
    }
    if (url!.protocol !== 'https:') fail('serverUrl', `must be an https:// URL, not "${k3s.serverUrl}"`)
  }
  if (k3s.flannelBackend && !FLANNEL_BACKENDS.includes(k3s.flannelBackend)) {
    fail('flannelBackend', `"${k3s.flannelBackend}" is not one of ${FLANNEL_BACKENDS.join(', ')}`)
  }
  for (const key of ['cniConfDir', 'cniBinDir'] as const) {
    if (k3s[key] && k3s.flannelBackend !== 'none') fail(key, 'only applies with flannelBackend: none (a custom CNI)')
  }
  for (const c of k3s.enableComponents) {
    if (!OPTIONAL_COMPONENTS.includes(c)) fail('enableComponents', `unknown component "${c}" (known: ${OPTIONAL_COMPONENTS.join(', ')})`)
  }
  for (const key of ['binaryPath', 'tokenFile', 'dataDir', 'criSocket', 'cniConfDir', 'cniBinDir', 'defaultLocalStoragePath'] as const) {
    if (k3s[key] && !k3s[key].startsWith('/')) fail(key, `must be an absolute path, not "${k3s[key]}"`)
  }
  for (const [key, value] of Object.entries(k3s.nodeLabels)) {
    const problem =
      labelKeyProblem(key) ??
      (value !== '' && !LABEL_NAME.test(value)
        ? `label "${key}": value "${value}" must be ≤ 63 characters [A-Za-z0-9-_.], starting and ending alphanumeric`
        : undefined)
    if (problem != null) fail('nodeLabels', problem)
  }
}
