import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { build, type Plugin } from 'esbuild'

export const REPO_ROOT = resolve(__dirname, '../../../..')
const RELEASES = resolve(__dirname, '../../compat/releases.json')

/** The commit recorded as the last release (compat/releases.json). */
export function previousRelease(): string {
  const { previous } = JSON.parse(readFileSync(RELEASES, 'utf8')) as { previous: string }
  if (!/^[0-9a-f]{40}$/.test(previous)) throw new Error(`${RELEASES}: "previous" must be a full 40-hex commit id, not "${previous}"`)
  return previous
}

/** What each tree needs to build the agent and the dev network. */
const PATHS = ['package.json', 'protos', 'packages', 'apps/node-core', 'tools/dev-network', 'tools/dev-pki', 'tools/spore']

/**
 * Extracts `sha`'s sources into `into` (git archive: no worktree metadata in the
 * shared .git). Throws, saying what to do, when this clone does not have it
 * (a shallow clone, or a commit that was never fetched).
 */
export function extractCommit(sha: string, into: string): void {
  try {
    execFileSync('git', ['-C', REPO_ROOT, 'cat-file', '-e', `${sha}^{commit}`], { stdio: 'pipe' })
  } catch {
    throw new Error(
      `the last release ${sha} (packages/conformance/compat/releases.json) is not in this clone at ${REPO_ROOT}: ` +
        `fetch full history (git fetch --unshallow, or git fetch origin ${sha}); compatibility cannot be checked without it`
    )
  }
  mkdirSync(into, { recursive: true })
  const present = PATHS.filter((p) => {
    try {
      execFileSync('git', ['-C', REPO_ROOT, 'cat-file', '-e', `${sha}:${p}`], { stdio: 'pipe' })
      return true
    } catch {
      return false
    }
  })
  const tar = execFileSync('git', ['-C', REPO_ROOT, 'archive', '--format=tar', sha, '--', ...present], { maxBuffer: 256 * 1024 * 1024 })
  execFileSync('tar', ['-x', '-C', into], { input: tar })
}

/**
 * node_modules for an extracted tree: today's third-party packages (the old
 * release's dependency set is a subset of today's: same versions, checked when
 * releases.json moves), and @mycelium/* pointing at the tree's own packages.
 */
export function linkNodeModules(tree: string): void {
  const nm = join(tree, 'node_modules')
  mkdirSync(join(nm, '@mycelium'), { recursive: true })
  for (const entry of readdirSync(join(REPO_ROOT, 'node_modules'))) {
    if (entry === '@mycelium' || entry === '.bin' || entry.startsWith('.')) continue
    symlinkSync(join(REPO_ROOT, 'node_modules', entry), join(nm, entry))
  }
  for (const group of ['packages', 'apps', 'tools']) {
    if (!existsSync(join(tree, group))) continue
    for (const name of readdirSync(join(tree, group))) {
      const dir = join(tree, group, name)
      if (!existsSync(join(dir, 'package.json'))) continue
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string }
      symlinkSync(dir, join(nm, pkg.name))
      // A package's own nested dependencies (e.g. commander 14 beside node-core): today's, by the same relative path.
      const nested = join(REPO_ROOT, group, name, 'node_modules')
      if (existsSync(nested)) symlinkSync(nested, join(dir, 'node_modules'))
    }
  }
}

/**
 * Bundles @mycelium/* from TypeScript source (the "@mycelium/source" condition,
 * as tests and typecheck resolve them); every third-party import stays an
 * external require of the exact file it resolved to at build time.
 */
const sourcesOnly: Plugin = {
  name: 'mycelium-sources-only',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (
        args.path.startsWith('@mycelium/') ||
        args.path.startsWith('node:') ||
        (args.pluginData as { inner?: boolean } | undefined)?.inner
      )
        return undefined
      const r = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, pluginData: { inner: true } })
      if (r.errors.length > 0 || r.path === '') return undefined
      return { path: r.path, external: true }
    })
  }
}

export async function bundle(options: {
  entry?: string
  stdin?: { contents: string; resolveDir: string }
  outfile: string
  external?: string[]
}): Promise<void> {
  mkdirSync(dirname(options.outfile), { recursive: true })
  await build({
    ...(options.entry != null ? { entryPoints: [options.entry] } : {}),
    ...(options.stdin != null ? { stdin: { ...options.stdin, loader: 'ts', sourcefile: 'driver.ts' } } : {}),
    outfile: options.outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    conditions: ['@mycelium/source'],
    external: options.external ?? [],
    plugins: [sourcesOnly],
    logLevel: 'error'
  })
}
