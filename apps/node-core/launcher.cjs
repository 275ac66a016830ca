#!/usr/bin/env node
// node-core: the release artifact's entry. It compiles node-core-main.cjs (the
// single-file bundle, 1.1 MB) with the V8 code cache written beside it at package
// time: parsing the bundle costs ~190 ms on a loaded 2-core machine, reading the
// cache ~20 ms (tools/bench cold-start). A cache V8 rejects (another node binary
// or V8 flags) is ignored and replaced, best effort; the bundle then runs as it
// would without one.
//
// `node-core run` (the daemon) compiles from its own, warm cache when it has one:
// node-core-main.cjs.run-cache, written by the daemon the first time it is MANAGED
// (`require.codeCacheReady`, called by bin). The package-time cache holds only what
// compiling the bundle compiles eagerly (its top level, ~66 KB); every function the start
// then runs — ~300 module bodies and what they call — V8 compiles lazily, from source, on
// each start. A cache written once the start has run holds their bytecode (~1.4 MB):
// measured on the release artifact, CPU to MANAGED 520 → 410 ms median (interleaved runs).
// V8 accepts a cache only under the V8 flags it was made with, and the daemon sets its
// own (v8-flags.ts) once it runs: the file's first line records them with node's
// execArgv (and the bundle's sha256), and the launcher sets the same flags before compiling (the daemon then sets
// them again: no change) — only when execArgv is the same, so a flag given on node's
// command line still wins; otherwise the package-time cache is used, as on a first start.
//
// `node-core --help` (or `-h`, `help`) answers from node-core-help.txt without compiling the
// bundle: that text is the bundle's own `--help` output, captured at package time (package.mjs),
// so the CLI stays its one source. Only where the bundle would print the same bytes: commander
// wraps at 80 columns unless stdout is a terminal of another width.
'use strict'
const { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } = require('node:fs')
const { join } = require('node:path')

const args = process.argv.slice(2)
if (args.length === 1 && (args[0] === '--help' || args[0] === '-h' || args[0] === 'help')) {
  let help
  try {
    help = readFileSync(join(__dirname, 'node-core-help.txt'))
  } catch {
    // not packaged yet (package.mjs writes it from this very output): the bundle answers
  }
  if (help != null && (!require('node:tty').isatty(1) || process.stdout.columns === 80)) {
    writeSync(1, help)
    process.exit(0)
  }
}

const Module = require('node:module')
const vm = require('node:vm')
const file = join(__dirname, 'node-core-main.cjs')
const cacheFile = `${file}.cache`
const runCacheFile = `${file}.run-cache`
const daemon = args.find((a) => !a.startsWith('-')) === 'run'
const bundle = readFileSync(file)
// The warm cache is made at run time, beside a bundle that an install may replace in place: it
// holds the digest of the bundle it was made from. V8 itself checks only the source's length.
const bundleDigest = daemon ? require('node:crypto').createHash('sha256').update(bundle).digest('hex') : ''
let cachedData
/** Which cache cachedData is: the daemon's warm one (`run`), the package-time one, or none. */
let from
if (daemon) {
  try {
    const data = readFileSync(runCacheFile)
    const newline = data.indexOf(10)
    const { v8Flags, execArgv, bundle: madeFrom } = JSON.parse(data.subarray(0, newline).toString())
    if (madeFrom === bundleDigest && JSON.stringify(execArgv) === JSON.stringify(process.execArgv)) {
      if (v8Flags !== '') require('node:v8').setFlagsFromString(v8Flags)
      cachedData = data.subarray(newline + 1)
      from = 'run'
    }
  } catch {
    // none yet (the first start) or unreadable: the package-time cache below
  }
}
if (from == null) {
  try {
    cachedData = readFileSync(cacheFile)
    from = 'package'
  } catch {
    // no cache: compile from source
  }
}
// Node 20 drops a vm.Script's dynamic-import callback when the script comes from a code
// cache, so the bundle holds no `import()`: it loads its one ESM chunk (the Kubernetes
// client) through this module's own import, as `require.importEsm(url)`.
// latin1, not utf8: the bundle is ASCII (package.mjs checks), and decoding 2.2 MB (its size then) as UTF-8 costs
// Node 20 ~50 ms, as latin1 ~1 ms, for the same string.
const script = new vm.Script(Module.wrap(bundle.toString('latin1')), { filename: file, cachedData })
const accepted = cachedData != null && script.cachedDataRejected !== true
/** Written atomically (temp, fsync, rename), best effort: a read-only install starts as it would without. */
const writeCache = (target, bytes) => {
  try {
    const fd = openSync(`${target}.${process.pid}`, 'w')
    try {
      writeSync(fd, bytes)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(`${target}.${process.pid}`, target)
  } catch {
    // not writable
  }
}
// A missing or rejected package-time cache is replaced (not after the daemon's cache was tried:
// its flags are set now, and a cache made under them would be rejected by every other command).
if (!accepted && from !== 'run') writeCache(cacheFile, script.createCachedData())
const mod = new Module(file, module)
mod.filename = file
mod.paths = Module._nodeModulePaths(__dirname)
const requireFromBundle = Module.createRequire(file)
requireFromBundle.importEsm = (url) => import(url)
// Called by the daemon once MANAGED, with the V8 flags it set: writes the warm cache (see the top)
// unless this start compiled from an accepted one. Once per process.
let warmWritten = from === 'run' && accepted
requireFromBundle.codeCacheReady = (v8Flags) => {
  if (!daemon || warmWritten) return
  warmWritten = true
  const header = JSON.stringify({ v8Flags, execArgv: process.execArgv, bundle: bundleDigest })
  writeCache(runCacheFile, Buffer.concat([Buffer.from(`${header}\n`), script.createCachedData()]))
}
script.runInThisContext()(mod.exports, requireFromBundle, mod, file, __dirname)
