import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Pair, type YAMLMap } from 'yaml'
import { BootstrapBody, ComponentBody, Endpoint, dateProblem, InvalidInputError, ServiceBody, Spore } from '@mycelium/core-interfaces'
import { sporeNameProblem } from '@mycelium/spore-client'

/**
 * A spore as an operator writes it (YAML or JSON):
 *
 *   networkId: net1
 *   name: service/network-manager
 *   ttl: 24h                 # or expiresAt: 2027-01-01T00:00:00Z
 *   service:
 *     service: network-manager
 *     endpoints: [{ address: "10.0.0.1:7000", priority: 0 }]
 *
 * The sequence is not written by hand: `spore sign` bumps it.
 */
const TOP_KEYS = ['networkId', 'name', 'sequence', 'issuedAt', 'expiresAt', 'ttl', 'bootstrap', 'service', 'component']
const BODY_KEYS = { bootstrap: BootstrapBody, service: ServiceBody, component: ComponentBody } as const
type BodyKey = keyof typeof BODY_KEYS

const knownFields = (type: { fromPartial(o: object): object }): string[] => Object.keys(type.fromPartial({}))

const TTL = /^(\d{1,9})(s|m|h|d)$/
const TTL_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

export function parseTtl(value: string, where: string): number {
  const m = TTL.exec(value.trim())
  if (m == null) throw new InvalidInputError(`"${value}" is not a duration like 90s, 30m, 24h or 7d (at most 9 digits)`, where)
  return Number(m[1]) * TTL_MS[m[2] as keyof typeof TTL_MS]
}

export interface SporeInput {
  /** The spore with sequence 0 unless the input fixed one. */
  spore: Spore
  /** The sequence the input asked for explicitly, if any. */
  sequence?: number
}

/** Parses and checks a spore description; errors name the file and line. */
export function parseSporeInput(text: string, file: string, nowMs = Date.now()): SporeInput {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    throw new InvalidInputError(e.message.split('\n')[0]!, `${file}:${e.linePos?.[0].line ?? 1}`)
  }
  const at = (node: { range?: [number, number, number] | null } | null | undefined): string =>
    `${file}:${node?.range != null ? lineCounter.linePos(node.range[0]).line : 1}`
  if (!isMap(doc.contents)) throw new InvalidInputError('must be a mapping of spore fields', `${file}:1`)

  const checkKeys = (map: YAMLMap, allowed: string[], path: string): void => {
    for (const pair of map.items as Pair[]) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
      if (!allowed.includes(key)) {
        throw new InvalidInputError(`unknown key "${path}${key}" (expected one of: ${allowed.join(', ')})`, at(pair.key as never))
      }
    }
  }
  checkKeys(doc.contents, TOP_KEYS, '')
  const bodies = (doc.contents.items as Pair[])
    .map((p) => (isScalar(p.key) ? String(p.key.value) : ''))
    .filter((k): k is BodyKey => k in BODY_KEYS)
  if (bodies.length !== 1) {
    throw new InvalidInputError(`needs exactly one body (bootstrap, service or component), found ${bodies.length}`, `${file}:1`)
  }
  const bodyKey = bodies[0]!
  const bodyNode = doc.contents.get(bodyKey, true)
  if (!isMap(bodyNode)) throw new InvalidInputError(`"${bodyKey}" must be a mapping`, at(bodyNode as never))
  checkKeys(bodyNode, knownFields(BODY_KEYS[bodyKey]), `${bodyKey}.`)
  const endpoints = bodyNode.get('endpoints', true) ?? bodyNode.get('seeds', true)
  if (isSeq(endpoints)) {
    for (const item of endpoints.items) {
      if (isMap(item)) checkKeys(item, knownFields(Endpoint), `${bodyKey}.endpoints[].`)
    }
  }

  const obj = doc.toJS() as Record<string, unknown>
  for (const field of ['networkId', 'name'] as const) {
    if (typeof obj[field] !== 'string' || obj[field] === '') {
      throw new InvalidInputError(`"${field}" is required`, at(doc.contents.get(field, true) as never))
    }
  }
  // YAML scalars (a string, a number, a timestamp) are stringified on purpose; anything else
  // becomes an invalid date or TTL and is refused by name below.
  /* eslint-disable @typescript-eslint/no-base-to-string */
  const issuedAt = obj.issuedAt != null ? new Date(String(obj.issuedAt)) : new Date(nowMs)
  let expiresAt: Date
  if (obj.expiresAt != null) expiresAt = new Date(String(obj.expiresAt))
  else if (obj.ttl != null) expiresAt = new Date(issuedAt.getTime() + parseTtl(String(obj.ttl), at(doc.contents.get('ttl', true) as never)))
  else throw new InvalidInputError('needs "expiresAt" or "ttl": every spore expires', `${file}:1`)
  /* eslint-enable @typescript-eslint/no-base-to-string */
  for (const [field, date] of [
    ['issuedAt', issuedAt],
    ['expiresAt', expiresAt]
  ] as const) {
    if (Number.isNaN(date.getTime())) throw new InvalidInputError(`"${field}" is not a date`, at(doc.contents.get(field, true) as never))
    // Nodes refuse timestamps outside protobuf's range; never sign one.
    const problem = dateProblem(date)
    if (problem != null) throw new InvalidInputError(`"${field}": ${problem}`, at(doc.contents.get(field, true) as never))
  }
  const nameProblem = sporeNameProblem(String(obj.name))
  if (nameProblem != null) throw new InvalidInputError(nameProblem, at(doc.contents.get('name', true) as never))

  const spore = Spore.fromJSON({ networkId: obj.networkId, name: obj.name, [bodyKey]: obj[bodyKey] })
  spore.issuedAt = issuedAt
  spore.expiresAt = expiresAt
  const sequence = obj.sequence != null ? Number(obj.sequence) : undefined
  if (sequence != null && (!Number.isSafeInteger(sequence) || sequence < 1)) {
    throw new InvalidInputError('"sequence" must be a positive integer', at(doc.contents.get('sequence', true) as never))
  }
  return sequence != null ? { spore, sequence } : { spore }
}
