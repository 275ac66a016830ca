import { existsSync, readFileSync } from 'node:fs'
import { mkdir, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** Whether cgroup v2 limits can be set for components, and why not when they cannot. */
export type CgroupSupport = { available: true; dir: string } | { available: false; reason: string }

/**
 * Detects a usable cgroup v2 hierarchy: the unified mount at `root` with
 * the memory and cpu controllers, a writable directory for our components
 * (`<root>/<own cgroup>/mycelium-components` is not possible — a process
 * may not sit in an inner node — so a sibling `<root>/mycelium-components`),
 * and both controllers delegated to it. Anything else is "not available"
 * with the reason; limits are then skipped, never faked.
 */
export async function detectCgroupV2(root: string): Promise<CgroupSupport> {
  const controllersFile = join(root, 'cgroup.controllers')
  if (!existsSync(controllersFile))
    return { available: false, reason: `cgroup v2 not mounted at ${root} (v1 or hybrid hierarchy): memory/CPU limits not enforced` }
  const controllers = readFileSync(controllersFile, 'utf8').trim().split(/\s+/)
  const missing = ['memory', 'cpu'].filter((c) => !controllers.includes(c))
  if (missing.length > 0) return { available: false, reason: `cgroup v2 at ${root} lacks controller(s) ${missing.join(', ')}` }
  const dir = join(root, 'mycelium-components')
  try {
    await writeFile(join(root, 'cgroup.subtree_control'), '+memory +cpu')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'cgroup.subtree_control'), '+memory +cpu')
  } catch (err) {
    return { available: false, reason: `cgroup v2 at ${root} not writable for components: ${(err as Error).message}` }
  }
  return { available: true, dir }
}

/** Puts `pid` into a per-component cgroup with the given limits (0 = none). */
export async function limitProcess(
  support: CgroupSupport,
  name: string,
  pid: number,
  memoryBytes: number,
  cpuMillis: number
): Promise<void> {
  if (!support.available) return
  const dir = join(support.dir, name)
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'memory.max'), memoryBytes > 0 ? String(memoryBytes) : 'max')
  // cpu.max: "<quota> <period>" in µs; 1000 millicores = one full CPU.
  await writeFile(join(dir, 'cpu.max'), cpuMillis > 0 ? `${cpuMillis * 100} 100000` : 'max 100000')
  await writeFile(join(dir, 'cgroup.procs'), String(pid))
}

/** Removes a component's cgroup once its process is gone (best effort: it fails while a process remains). */
export async function releaseCgroup(support: CgroupSupport, name: string): Promise<void> {
  if (support.available) await rmdir(join(support.dir, name)).catch(() => undefined)
}
