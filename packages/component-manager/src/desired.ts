import type { Assignment, ComponentBody } from '@mycelium/core-interfaces'
import type { ComponentSpec, DesiredComponent } from './planner.js'

/** The component contract (component.proto) version this manager speaks. */
export const COMPONENT_CONTRACT_VERSION = 1
/** Spore names of components: "component/<name>". */
export const COMPONENT_SPORE_PREFIX = 'component/'

const DIGEST = /^sha256:[0-9a-f]{64}$/
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

export interface SpecLimits {
  /** Artifacts larger than this are refused before fetching. */
  artifactMaxBytes: number
}

/**
 * A verified ComponentBody as a spec, or the reason it cannot be used (which
 * field, what is wrong). Pure.
 */
export function specOf(body: ComponentBody, limits: SpecLimits): ComponentSpec | { problem: string } {
  if (!NAME.test(body.name)) return { problem: `name "${body.name}" is not a component name ([a-z0-9._-], at most 63)` }
  if (!DIGEST.test(body.artifactDigest)) return { problem: `artifact_digest "${body.artifactDigest}" is not "sha256:<64 hex>"` }
  const urls = body.artifactUrls.filter((u) => u.startsWith('https://'))
  if (urls.length === 0) return { problem: `artifact_urls has no https:// URL (${body.artifactUrls.length} given)` }
  const entry = body.entry.replace(/^\.\//, '')
  if (entry === '' || entry.startsWith('/') || entry.split('/').includes('..'))
    return { problem: `entry "${body.entry}" must be a relative path inside the artifact` }
  const contractVersion = body.contractVersion || COMPONENT_CONTRACT_VERSION
  if (contractVersion !== COMPONENT_CONTRACT_VERSION)
    return { problem: `contract_version ${contractVersion} is not spoken here (this node speaks ${COMPONENT_CONTRACT_VERSION})` }
  if (body.artifactSizeBytes > limits.artifactMaxBytes)
    return { problem: `artifact_size_bytes ${body.artifactSizeBytes} exceeds the node's artifact cap ${limits.artifactMaxBytes}` }
  return {
    name: body.name,
    version: body.version,
    digest: body.artifactDigest,
    urls,
    entry,
    args: [...body.args],
    sizeBytes: body.artifactSizeBytes,
    contractVersion,
    memoryLimitBytes: body.memoryLimitBytes,
    cpuMillis: body.cpuMillis,
    heapLimitMb: body.heapLimitMb,
    onDemand: body.onDemand,
    idleTimeoutMs: body.idleTimeoutMs
  }
}

/**
 * What the assignments want, resolved against the verified catalogue. An
 * assignment whose spore is unknown (absent, unsigned or expired spores never
 * reach the catalogue) keeps the spec last installed for it (`known`), so a
 * node that lost its managers and spore sources keeps running what it ran;
 * without one it is refused with the reason. Pure.
 */
export function desiredComponents(
  assignments: Assignment[],
  catalogue: ComponentBody[],
  known: Record<string, ComponentSpec>,
  limits: SpecLimits
): DesiredComponent[] {
  const out: DesiredComponent[] = []
  const byName = new Map(catalogue.map((b) => [b.name, b]))
  const taken = new Set<string>()
  for (const a of assignments) {
    const base = { assignmentId: a.assignmentId, run: a.desiredState !== 'stopped', parameters: { ...a.parameters } }
    if (!a.componentSpore.startsWith(COMPONENT_SPORE_PREFIX)) {
      out.push({
        ...base,
        name: a.componentSpore,
        problem: `component_spore "${a.componentSpore}" does not start with "${COMPONENT_SPORE_PREFIX}"`
      })
      continue
    }
    const name = a.componentSpore.slice(COMPONENT_SPORE_PREFIX.length)
    if (taken.has(name)) continue // one instance per component; the first assignment wins
    taken.add(name)
    if (a.desiredState !== 'running' && a.desiredState !== 'stopped') {
      out.push({ ...base, name, problem: `desired_state "${a.desiredState}" is neither "running" nor "stopped"` })
      continue
    }
    const body = byName.get(name)
    if (body == null) {
      const last = known[name]
      out.push(
        last != null
          ? { ...base, name, spec: last }
          : { ...base, name, problem: `no verified spore "${a.componentSpore}" (unknown, unsigned or expired)` }
      )
      continue
    }
    const spec = specOf(body, limits)
    out.push('problem' in spec ? { ...base, name, problem: `spore ${a.componentSpore}: ${spec.problem}` } : { ...base, name, spec })
  }
  return out
}
