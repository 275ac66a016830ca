#!/usr/bin/env node
// The dependency rule of docs/ARCHITECTURE.md, enforced (part of `npm run lint`):
//
//   core-interfaces (contracts) ← core-utils (mechanisms) ← basic-net, spore-client,
//   k3s-runtime ← bootstrap-agent ← apps/node-core;  tools/* may use anything.
//
// A shipped package (packages/*, apps/*) may depend on, and import, only shipped
// packages of a lower layer (never a sibling, never upward). It never depends on a
// tools/* package at run time: a tool is at most a devDependency (node-core's `dev`
// command loads the dev network lazily, when it is installed). Imports name a
// package, never its files (`@mycelium/x/src/...`, `../../packages/x`).
//
// Reads package.json `dependencies`/`devDependencies` and the import specifiers of
// every .ts/.mjs/.cjs file under a package's src/ and test/. Exits 1 with one line
// per violation; first it runs itself on a throwaway workspace with one violation of
// each kind (selfTest), so a checker that stopped seeing them fails too. Pure node,
// no dependencies: runs before anything is built.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve, dirname, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const workspaceRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Layers of shipped packages, lowest first. A package may use only lower layers. */
export const LAYERS = {
  '@mycelium/core-interfaces': 0,
  '@mycelium/core-utils': 1,
  '@mycelium/basic-net': 2,
  '@mycelium/spore-client': 2,
  '@mycelium/k3s-runtime': 2,
  '@mycelium/self-update': 2,
  '@mycelium/bootstrap-agent': 3,
  '@mycelium/component-manager': 4,
  '@mycelium/conformance': 4,
  '@mycelium/node-core': 5
}

/**
 * Runtime dependencies on a tool that are known and scheduled to go (none today).
 * The check fails while an entry here is no longer needed.
 */
export const KNOWN_EXCEPTIONS = []

const SHIPPED_DIRS = ['packages', 'apps']
const TOOL_DIRS = ['tools']

function workspacePackages(root) {
  const found = []
  for (const group of [...SHIPPED_DIRS, ...TOOL_DIRS]) {
    const dir = join(root, group)
    if (!existsSync(dir)) continue
    for (const name of readdirSync(dir)) {
      const manifest = join(dir, name, 'package.json')
      if (!existsSync(manifest)) continue
      const pkg = JSON.parse(readFileSync(manifest, 'utf8'))
      found.push({ name: pkg.name, dir: join(dir, name), shipped: SHIPPED_DIRS.includes(group), pkg })
    }
  }
  return found
}

function* sourceFiles(dir) {
  if (!existsSync(dir)) return
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist' || entry === 'generated') continue
    const path = join(dir, entry)
    if (statSync(path).isDirectory()) yield* sourceFiles(path)
    else if (/\.(ts|mts|cts|mjs|cjs|js)$/.test(entry) && !entry.endsWith('.d.ts')) yield path
  }
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm

function importsOf(file) {
  const text = readFileSync(file, 'utf8')
  const specs = []
  for (const m of text.matchAll(IMPORT)) {
    const line = text.slice(0, m.index).split('\n').length
    specs.push({ spec: m[1], line })
  }
  return specs
}

/** Every violation of the rule in the workspace, as readable lines. */
export function checkPackageGraph(root = workspaceRoot, exceptions = KNOWN_EXCEPTIONS) {
  const packages = workspacePackages(root)
  const byName = new Map(packages.map((p) => [p.name, p]))
  const problems = []
  const usedExceptions = new Set()
  const isException = (from, to) => {
    const i = exceptions.findIndex((e) => e.from === from && e.to === to)
    if (i >= 0) usedExceptions.add(i)
    return i >= 0
  }
  const layerOf = (name) => LAYERS[name]

  for (const p of packages) {
    if (p.shipped && layerOf(p.name) == null) {
      problems.push(
        `${p.name}: a shipped package with no layer; add it to LAYERS in scripts/check-package-graph.mjs and to docs/ARCHITECTURE.md`
      )
    }
    if (!p.shipped) continue // tools/* may depend on anything
    const deps = p.pkg.dependencies ?? {}
    const devDeps = p.pkg.devDependencies ?? {}
    for (const [field, list] of [
      ['dependencies', deps],
      ['devDependencies', devDeps]
    ]) {
      for (const dep of Object.keys(list)) {
        const target = byName.get(dep)
        if (target == null) continue
        if (!target.shipped) {
          if (field === 'dependencies' && !isException(p.name, dep)) {
            problems.push(
              `${p.name}: package.json dependencies lists the tool ${dep}; nothing shipped depends on tools/* at run time (make it a devDependency)`
            )
          }
        } else if (!(layerOf(dep) < layerOf(p.name))) {
          problems.push(
            `${p.name} (layer ${layerOf(p.name)}): package.json ${field} lists ${dep} (layer ${layerOf(dep)}); only lower layers may be used`
          )
        }
      }
    }
    for (const sub of ['src', 'test']) {
      for (const file of sourceFiles(join(p.dir, sub))) {
        const at = (line) => `${relative(root, file)}:${line}`
        for (const { spec, line } of importsOf(file)) {
          if (spec.startsWith('.')) {
            const target = resolve(dirname(file), spec)
            if (target !== p.dir && !target.startsWith(p.dir + sep)) {
              problems.push(`${at(line)}: imports '${spec}', outside ${p.name}; import the package by name`)
            }
            continue
          }
          const m = /^(@mycelium\/[^/]+)(\/.*)?$/.exec(spec)
          if (m == null) continue
          const [, dep, subpath] = m
          const target = byName.get(dep)
          if (target == null) {
            problems.push(`${at(line)}: imports ${dep}, which is not a workspace package`)
            continue
          }
          if (subpath != null && subpath !== '/package.json') {
            problems.push(`${at(line)}: deep import '${spec}'; import what ${dep}'s src/index.ts exports`)
          }
          if (dep === p.name) continue
          if (deps[dep] == null && devDeps[dep] == null) {
            problems.push(`${at(line)}: imports ${dep}, not listed in ${p.name}'s package.json`)
          }
          if (target.shipped && !(layerOf(dep) < layerOf(p.name))) {
            problems.push(
              `${at(line)}: ${p.name} (layer ${layerOf(p.name)}) imports ${dep} (layer ${layerOf(dep)}); only lower layers may be imported`
            )
          }
        }
      }
    }
  }
  exceptions.forEach((e, i) => {
    if (!usedExceptions.has(i)) {
      problems.push(`scripts/check-package-graph.mjs: KNOWN_EXCEPTIONS entry ${e.from} → ${e.to} is no longer needed; delete it`)
    }
  })
  return problems
}

/**
 * The checker checked: a throwaway workspace with one violation of each kind must
 * produce exactly those, and a clean one none (so the check can fail, and does).
 */
export function selfTest() {
  const dir = mkdtempSync(join(tmpdir(), 'mycelium-graph-'))
  const write = (path, text) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  const manifest = (name, dependencies = {}, devDependencies = {}) => JSON.stringify({ name, dependencies, devDependencies })
  try {
    write('packages/core-interfaces/package.json', manifest('@mycelium/core-interfaces'))
    write('packages/basic-net/package.json', manifest('@mycelium/basic-net', { '@mycelium/core-interfaces': '*' }))
    write('packages/basic-net/src/index.ts', "export * from '@mycelium/core-interfaces'\nimport './local.js'\n")
    write('tools/testing/package.json', manifest('@mycelium/testing', { '@mycelium/basic-net': '*' }))
    write('tools/testing/src/index.ts', "import '@mycelium/basic-net'\n")
    const clean = checkPackageGraph(dir, [])
    if (clean.length !== 0) return [`self-test: a clean workspace reported ${clean.join('; ')}`]
    write(
      'packages/spore-client/package.json',
      manifest('@mycelium/spore-client', { '@mycelium/basic-net': '*', '@mycelium/testing': '*' })
    )
    write(
      'packages/spore-client/src/a.ts',
      "import '@mycelium/basic-net'\nimport '@mycelium/core-interfaces/src/x.js'\nimport '../../basic-net/src/index.js'\n"
    )
    write('packages/core-interfaces/test/b.spec.ts', "import { x } from '@mycelium/basic-net'\n")
    write('apps/rogue/package.json', manifest('@mycelium/rogue'))
    const expected = [
      /spore-client \(layer 2\): package\.json dependencies lists @mycelium\/basic-net/,
      /spore-client: package\.json dependencies lists the tool @mycelium\/testing/,
      /a\.ts:1: @mycelium\/spore-client \(layer 2\) imports @mycelium\/basic-net/,
      /a\.ts:2: deep import/,
      /a\.ts:2: imports @mycelium\/core-interfaces, not listed/,
      /a\.ts:3: imports '\.\.\/\.\.\/basic-net\/src\/index\.js', outside/,
      /b\.spec\.ts:1: imports @mycelium\/basic-net, not listed/,
      /b\.spec\.ts:1: @mycelium\/core-interfaces \(layer 0\) imports @mycelium\/basic-net/,
      /@mycelium\/rogue: a shipped package with no layer/,
      /KNOWN_EXCEPTIONS entry @mycelium\/basic-net → @mycelium\/testing is no longer needed/
    ]
    const got = checkPackageGraph(dir, [{ from: '@mycelium/basic-net', to: '@mycelium/testing' }])
    const missing = expected.filter((re) => !got.some((line) => re.test(line)))
    const extra = got.filter((line) => !expected.some((re) => re.test(line)))
    return [...missing.map((re) => `self-test: not reported: ${re}`), ...extra.map((line) => `self-test: unexpected: ${line}`)]
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] != null && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const problems = [...selfTest(), ...checkPackageGraph()]
  if (problems.length > 0) {
    process.stderr.write(`package graph: ${problems.length} violation(s) of the dependency rule (docs/ARCHITECTURE.md):\n`)
    for (const p of problems) process.stderr.write(`  ${p}\n`)
    process.exit(1)
  }
  process.stdout.write('package graph: every package depends only on lower layers; nothing shipped depends on tools/*\n')
}
