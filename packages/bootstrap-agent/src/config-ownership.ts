import { NodeConfig } from '@mycelium/core-interfaces'

/**
 * Who owns each NodeConfig key.
 *
 * - `node`: the node's own facts and local surfaces, set only in the local
 *   YAML (file + environment + flags): who it is, where its state and
 *   identity live, how it first finds the network, what it listens on
 *   locally, how its logs are shaped for the local collector. A manager
 *   update that sets one of these (to anything but the node's own value) is
 *   refused, naming the key.
 * - `manager`: how the node behaves in the network. The local YAML gives the
 *   value until a manager sets the key's section; from then on the stored
 *   (tried, promoted) manager config is in force, across restarts.
 * - `meta`: `version`, set by whoever issues the config.
 *
 * Keys are `section` (the whole section) or `section.field`; a field's
 * entry wins over its section's. Manager-owned keys come from the manager's
 * config per section: a section present in it (a message set, or a
 * non-empty `labels` map) supplies all its manager-owned fields (unset ones
 * take their defaults); an absent section leaves the local values.
 */
export type ConfigOwner = 'node' | 'manager' | 'meta'

export const CONFIG_OWNERSHIP: Readonly<Record<string, ConfigOwner>> = Object.freeze({
  version: 'meta',
  networkId: 'node',
  nodeId: 'node',
  stateDir: 'node',
  labels: 'manager',
  identity: 'node',
  'discovery.bootstrapFile': 'node',
  'discovery.httpsUrls': 'manager',
  'discovery.httpsCaFile': 'manager',
  'discovery.clockSlack': 'manager',
  'discovery.refreshInterval': 'manager',
  'discovery.sourceTimeout': 'manager',
  'peers.listenAddress': 'node',
  'peers.seeds': 'manager',
  'peers.multicastEnabled': 'manager',
  'peers.multicastGroup': 'manager',
  'peers.multicastInterface': 'manager',
  'peers.pingInterval': 'manager',
  'peers.phiThreshold': 'manager',
  handoff: 'manager',
  reconnect: 'manager',
  k3s: 'manager',
  status: 'node',
  'logging.level': 'manager',
  'logging.format': 'node',
  update: 'node'
})

/** Owner of a key path ("peers.seeds", "k3s.role"), or undefined for a key the table does not know. */
export function ownerOf(path: string): ConfigOwner | undefined {
  const exact = CONFIG_OWNERSHIP[path]
  if (exact != null) return exact
  const dot = path.indexOf('.')
  return dot > 0 ? CONFIG_OWNERSHIP[path.slice(0, dot)] : undefined
}

/** Top-level NodeConfig fields that are messages (sections) rather than scalars or maps. */
const SECTIONS = ['identity', 'discovery', 'peers', 'handoff', 'reconnect', 'k3s', 'status', 'logging', 'update'] as const
export type ConfigSection = (typeof SECTIONS)[number]

/** Sections holding at least one manager-owned key (and `labels`): what status reports a version for. */
export const MANAGER_SECTIONS: readonly string[] = Object.freeze([
  'labels',
  ...SECTIONS.filter((s) => Object.entries(CONFIG_OWNERSHIP).some(([k, o]) => o === 'manager' && (k === s || k.startsWith(`${s}.`))))
])

const isUnset = (v: unknown): boolean =>
  v == null ||
  v === '' ||
  v === 0 ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date) && Object.keys(v).length === 0)

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null)

/**
 * Node-owned keys a remote config sets to something other than the node's
 * own value (`local`: the node's YAML). `networkId` and `nodeId` may repeat
 * the node's values; any other value for them is a touch too.
 */
export function nodeOwnedKeysTouched(remote: NodeConfig, local: NodeConfig): string[] {
  const out: string[] = []
  const r = remote as unknown as Record<string, unknown>
  const l = local as unknown as Record<string, unknown>
  for (const [key, value] of Object.entries(r)) {
    if ((SECTIONS as readonly string[]).includes(key)) {
      if (value == null) continue
      const localSection = (l[key] ?? {}) as Record<string, unknown>
      for (const [field, v] of Object.entries(value as Record<string, unknown>)) {
        const path = `${key}.${field}`
        if (ownerOf(path) === 'node' && !isUnset(v) && !same(v, localSection[field])) out.push(path)
      }
    } else if (ownerOf(key) === 'node' && !isUnset(value) && !same(value, l[key])) out.push(key)
  }
  return out
}

/** Where each manager-owned section of an effective config came from: the manager config's version, or 0 for the local YAML. */
export type SectionVersions = Record<string, number>

export interface EffectiveConfig {
  config: NodeConfig
  versions: SectionVersions
}

/**
 * The config in force: the local YAML, with the manager-owned keys of every
 * section the stored (current) manager config sets. A stored config of
 * version 0 is the node's own seed: the YAML alone is in force (so an
 * edited YAML takes effect until a manager sets something). Pure.
 */
export function effectiveConfig(local: NodeConfig, stored: NodeConfig | undefined): EffectiveConfig {
  const out = NodeConfig.fromPartial(local)
  const versions: SectionVersions = Object.fromEntries(MANAGER_SECTIONS.map((s) => [s, 0]))
  if (stored == null || stored.version === 0) return { config: out, versions }
  out.version = stored.version
  if (Object.keys(stored.labels).length > 0) {
    out.labels = { ...stored.labels }
    versions.labels = stored.version
  }
  const o = out as unknown as Record<string, Record<string, unknown> | undefined>
  const s = stored as unknown as Record<string, Record<string, unknown> | undefined>
  for (const section of SECTIONS) {
    const from = s[section]
    if (from == null || !MANAGER_SECTIONS.includes(section)) continue
    const merged: Record<string, unknown> = { ...(o[section] ?? {}) }
    for (const [field, value] of Object.entries(from)) {
      if (ownerOf(`${section}.${field}`) === 'manager') merged[field] = value
    }
    o[section] = merged
    versions[section] = stored.version
  }
  return { config: NodeConfig.fromPartial(out), versions }
}
