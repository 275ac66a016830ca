import type { ComponentSpec, DesiredComponent, ObservedComponent } from './planner.js'

/**
 * What the runner hands the planner: the desired set with `update` command
 * pins applied, and what it observes of each component. Pure.
 */

/** A version an `update` command put in place of the spore's, while the spore still names `base`. */
export interface Pin {
  spec: ComponentSpec
  base: string
}

/**
 * An update command's version stands until the spore itself names other
 * bytes: a pin whose base is still the spore's digest replaces the spec; one
 * whose spore moved on is dropped. Returns the desired set and the pins kept.
 */
export function applyPins(
  desired: DesiredComponent[],
  pinned: Record<string, Pin>
): { desired: DesiredComponent[]; pinned: Record<string, Pin> } {
  const kept = { ...pinned }
  const out = desired.map((d) => {
    const pin = kept[d.name]
    if (pin == null || d.spec == null) return d
    if (pin.base === d.spec.digest) return { ...d, spec: pin.spec }
    delete kept[d.name]
    return d
  })
  return { desired: out, pinned: kept }
}

/** The part of an entry the planner's view is made of. */
export interface ObservableEntry {
  name: string
  spec?: Pick<ComponentSpec, 'digest'>
  proc?: { record: { digest: string; parametersKey: string } }
  blocked?: { digest: string; reason: string }
  wanted: boolean
}

/**
 * Each tracked component as the planner sees it. An install step is planned
 * only for what is not installed, and the desired spec's digest decides
 * (the entry's spec when nothing desired names one).
 */
export function observedComponents(
  entries: Iterable<ObservableEntry>,
  installedDigests: readonly string[],
  desired: DesiredComponent[]
): ObservedComponent[] {
  return [...entries].map((e) => {
    const digest = desired.find((x) => x.name === e.name)?.spec?.digest ?? e.spec?.digest
    return {
      name: e.name,
      installed: digest != null && installedDigests.includes(digest) ? [digest] : [],
      ...(e.proc != null ? { running: { digest: e.proc.record.digest, parametersKey: e.proc.record.parametersKey } } : {}),
      ...(e.blocked != null ? { blocked: { digest: e.blocked.digest, reason: e.blocked.reason } } : {}),
      inUse: e.wanted
    }
  })
}
