import { readFile } from 'node:fs/promises'
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair } from 'yaml'
import { InvalidConfigError, K3sRole, msToDuration, NodeConfig, type Duration } from '@mycelium/core-interfaces'
import { validateK3sConfig } from '@mycelium/k3s-runtime'
import { mapKeyProblem, MAX_TIMER_MS, validateNodeConfig } from './config-rules.js'
import { NODE_CONFIG_SCHEMA, type Kind, type Schema } from './config-schema.js'

/** The kind of `key` in `schema`, own keys only: "constructor" or "toString" are not config keys. */
const kindOf = (schema: Schema, key: string): Kind | undefined => (Object.hasOwn(schema, key) ? schema[key] : undefined)

/**
 * One validated NodeConfig from the YAML file, MYCELIUM_* environment
 * variables and --set flags (later wins). Keys may be camelCase or
 * snake_case; durations are "250ms", "1.5s", "2m", "1h". Unknown keys and bad
 * values are errors naming the key and where it came from (file:line,
 * variable, flag). Validated once, then frozen.
 */
const camel = (key: string): string => key.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase())

const DURATION = /^(\d{1,12}(?:\.\d{1,6})?)(ms|s|m|h)$/
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const

/**
 * "250ms", "1.5s", "2m", "1h": at most 2^31-1 ms (~24.8 days), the longest
 * delay a timer holds — a longer one would overflow setTimeout and fire
 * every millisecond. Zero only where `allowZero` (a zero interval or
 * timeout would spin or fail at once).
 */
export function parseDuration(text: string, where: string, allowZero = false): Duration {
  const m = DURATION.exec(text.trim())
  if (m == null) throw new InvalidConfigError(`"${text}" is not a duration like 250ms, 1.5s, 2m or 1h`, where)
  const ms = Math.round(Number(m[1]) * DURATION_MS[m[2] as keyof typeof DURATION_MS])
  if (ms > MAX_TIMER_MS)
    throw new InvalidConfigError(`"${text}" is longer than ${MAX_TIMER_MS} ms (~24.8 days), the longest a timer holds`, where)
  if (ms === 0 && !allowZero) throw new InvalidConfigError(`"${text}" is zero; this duration must be positive`, where)
  return msToDuration(ms)
}

function convert(kind: Kind, value: unknown, where: string): unknown {
  if (typeof kind === 'object' && 'list' in kind) {
    if (!Array.isArray(value)) throw new InvalidConfigError('must be a list', where)
    return value.map((v, i) => convertObject(kind.list as Schema, v, `${where}[${i}]`))
  }
  if (typeof kind === 'object') return convertObject(kind, value, where)
  switch (kind) {
    case 'string':
      if (typeof value !== 'string') throw new InvalidConfigError(`must be a string, not ${JSON.stringify(value)}`, where)
      return value
    case 'number': {
      const n = typeof value === 'string' && /^\d{1,15}(\.\d{1,9})?$/.test(value.trim()) ? Number(value) : value
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > Number.MAX_SAFE_INTEGER) {
        throw new InvalidConfigError(`must be a non-negative number, not ${JSON.stringify(value)}`, where)
      }
      return n
    }
    case 'bool':
      if (value === true || value === 'true') return true
      if (value === false || value === 'false') return false
      throw new InvalidConfigError(`must be true or false, not ${JSON.stringify(value)}`, where)
    case 'duration':
    case 'duration-or-zero':
      if (typeof value !== 'string')
        throw new InvalidConfigError(`must be a duration string like "1s", not ${JSON.stringify(value)}`, where)
      return parseDuration(value, where, kind === 'duration-or-zero')
    case 'map': {
      if (typeof value !== 'object' || value == null || Array.isArray(value))
        throw new InvalidConfigError('must be a mapping of strings', where)
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(value)) {
        const problem = mapKeyProblem(k)
        if (problem != null) throw new InvalidConfigError(problem, `${where}.${k}`)
        // Quoted in YAML when it looks like a number: no silent String() of lists or objects.
        if (typeof v !== 'string') throw new InvalidConfigError(`must be a string, not ${JSON.stringify(v)}`, `${where}.${k}`)
        out[k] = v
      }
      return out
    }
    case 'strings':
      if (!Array.isArray(value)) throw new InvalidConfigError('must be a list of strings', where)
      return value.map((v, i) => {
        if (typeof v !== 'string') throw new InvalidConfigError(`must be a string, not ${JSON.stringify(v)}`, `${where}[${i}]`)
        return v
      })
    case 'k3s-role': {
      const role = String(value).toUpperCase()
      if (role !== 'SERVER' && role !== 'AGENT')
        throw new InvalidConfigError(`must be "server" or "agent", not ${JSON.stringify(value)}`, where)
      return role === 'SERVER' ? K3sRole.SERVER : K3sRole.AGENT
    }
  }
}

function convertObject(schema: Schema, value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value == null || Array.isArray(value)) throw new InvalidConfigError('must be a mapping', where)
  const out: Record<string, unknown> = {}
  for (const [rawKey, v] of Object.entries(value)) {
    const key = camel(rawKey)
    const kind = kindOf(schema, key)
    const at = where === '' ? key : `${where}.${key}`
    if (kind == null) throw new InvalidConfigError(`unknown key "${rawKey}" (expected one of: ${Object.keys(schema).join(', ')})`, at)
    out[key] = convert(kind, v, at)
  }
  return out
}

/** Deep merge of plain objects and maps (later wins; lists and durations are replaced). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k]
    const plain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x != null && !Array.isArray(x) && !('seconds' in x)
    out[k] = plain(prev) && plain(v) ? merge(prev, v) : v
  }
  return out
}

/** The YAML file as validated partial config; errors carry `file:line key`. */
export function parseConfigYaml(text: string, file: string): Record<string, unknown> {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    throw new InvalidConfigError(e.message.split('\n')[0]!, `${file}:${e.linePos?.[0].line ?? 1}`)
  }
  if (doc.contents == null) return {}
  // Validate node by node so each error names its line.
  const lineOf = (node: Node | null | undefined): number => (node?.range != null ? lineCounter.linePos(node.range[0]).line : 1)
  // An alias (*name) stands for the node it names; the yaml library bounds
  // alias expansion (maxAliasCount), so an alias bomb is an error too.
  const resolved = (node: Node | null | undefined): Node | null | undefined =>
    isAlias(node) ? (node.resolve(doc as Document) as Node | undefined) : node
  const toValue = (node: Node | null | undefined): unknown => {
    if (node == null) return null
    try {
      return node.toJS(doc as Document)
    } catch (err) {
      throw new InvalidConfigError((err as Error).message.split('\n')[0]!, `${file}:${lineOf(node)}`)
    }
  }
  const walk = (schema: Schema, node: Node, path: string): Record<string, unknown> => {
    if (!isMap(node)) throw new InvalidConfigError('must be a mapping', `${file}:${lineOf(node)} ${path || '(top level)'}`)
    const out: Record<string, unknown> = {}
    for (const pair of node.items as Pair<Node, Node>[]) {
      const keyNode = resolved(pair.key)
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string') {
        throw new InvalidConfigError('keys must be plain strings', `${file}:${lineOf(pair.key)} ${path || '(top level)'}`)
      }
      const rawKey = keyNode.value
      const key = camel(rawKey)
      const at = path === '' ? key : `${path}.${key}`
      const where = `${file}:${lineOf(pair.key)} ${at}`
      const kind = kindOf(schema, key)
      if (kind == null) throw new InvalidConfigError(`unknown key "${rawKey}" (expected one of: ${Object.keys(schema).join(', ')})`, where)
      const value = resolved(pair.value)
      if (typeof kind === 'object' && !('list' in kind) && value != null) out[key] = walk(kind, value, at)
      else if (typeof kind === 'object' && 'list' in kind && isSeq(value)) {
        out[key] = value.items.map((item, i) => walk(kind.list as Schema, resolved(item as Node) as Node, `${at}[${i}]`))
      } else out[key] = convert(kind, toValue(value), `${file}:${lineOf(value ?? pair.key)} ${at}`)
    }
    return out
  }
  return walk(NODE_CONFIG_SCHEMA, resolved(doc.contents as Node) as Node, '')
}

/** MYCELIUM_NODE_ID, MYCELIUM_LOGGING__LEVEL (sections joined by "__"). */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  let out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MYCELIUM_') || value == null) continue
    const path = name.slice('MYCELIUM_'.length).toLowerCase().split('__').map(camel)
    out = merge(out, setPath(path, value, `environment ${name}`))
  }
  return out
}

/** --set key.path=value flags. */
export function configFromFlags(sets: string[]): Record<string, unknown> {
  let out: Record<string, unknown> = {}
  for (const set of sets) {
    const i = set.indexOf('=')
    if (i <= 0) throw new InvalidConfigError(`"${set}" is not key.path=value`, '--set')
    const raw = set.slice(0, i).split('.')
    out = merge(out, setPath(raw.map(camel), set.slice(i + 1), `--set ${set.slice(0, i)}`, raw))
  }
  return out
}

function setPath(path: string[], value: string, where: string, rawPath: string[] = path): Record<string, unknown> {
  let schema: Kind = NODE_CONFIG_SCHEMA
  for (const [i, key] of path.entries()) {
    // labels.<key>=value: the last segment is a map key, kept as written.
    if (schema === 'map' && i === path.length - 1) {
      const problem = mapKeyProblem(rawPath[i]!)
      if (problem != null) throw new InvalidConfigError(problem, where)
      return path.slice(0, i).reduceRight<unknown>((acc, k) => ({ [k]: acc }), { [rawPath[i]!]: value }) as Record<string, unknown>
    }
    if (typeof schema !== 'object' || 'list' in schema || kindOf(schema, key) == null) {
      throw new InvalidConfigError(`"${path.slice(0, i + 1).join('.')}" is not a config key`, where)
    }
    schema = kindOf(schema as Schema, key)!
  }
  const leaf = convert(schema, schema === 'strings' ? value.split(',') : value, where)
  return path.reduceRight<unknown>((acc, key) => ({ [key]: acc }), leaf) as Record<string, unknown>
}

export interface LoadConfigOptions {
  file?: string
  env?: NodeJS.ProcessEnv
  sets?: string[]
}

/** Loads, merges and validates; returns a frozen NodeConfig. */
export async function loadConfig(options: LoadConfigOptions): Promise<Readonly<NodeConfig>> {
  let merged: Record<string, unknown> = {}
  if (options.file != null) {
    let text: string
    try {
      text = await readFile(options.file, 'utf8')
    } catch (err) {
      throw new InvalidConfigError(`cannot read: ${(err as Error).message}`, options.file)
    }
    merged = merge(merged, parseConfigYaml(text, options.file))
  }
  merged = merge(merged, configFromEnv(options.env ?? {}))
  merged = merge(merged, configFromFlags(options.sets ?? []))
  const config = NodeConfig.fromPartial(merged as never)
  const where = options.file ?? 'config'
  validateNodeConfig(config, where)
  if (config.k3s != null) validateK3sConfig(config.k3s, `${where} k3s`)
  return Object.freeze(config)
}
