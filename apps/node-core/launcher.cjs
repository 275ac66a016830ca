#!/usr/bin/env node
// node-core: the release artifact's entry. It compiles node-core-main.cjs (the
// single-file bundle, 2.3 MB) with the V8 code cache written beside it at package
// time: parsing the bundle costs ~190 ms on a loaded 2-core machine, reading the
// cache ~20 ms (tools/bench cold-start). A cache V8 rejects (another node binary
// or V8 flags) is ignored and replaced, best effort; the bundle then runs as it
// would without one.
//
// `node-core --help` (or `-h`, `help`) answers from node-core-help.txt without compiling the
// bundle: that text is the bundle's own `--help` output, captured at package time (package.mjs),
// so the CLI stays its one source. Only where the bundle would print the same bytes: commander
// wraps at 80 columns unless stdout is a terminal of another width.
'use strict'
const { readFileSync, writeFileSync, renameSync, writeSync } = require('node:fs')
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
let cachedData
try {
  cachedData = readFileSync(cacheFile)
} catch {
  // no cache: compile from source
}
// Node 20 drops a vm.Script's dynamic-import callback when the script comes from a code
// cache, so the bundle holds no `import()`: it loads its one ESM chunk (the Kubernetes
// client) through this module's own import, as `require.importEsm(url)`.
// latin1, not utf8: the bundle is ASCII (package.mjs checks), and decoding 2.2 MB as UTF-8 costs
// Node 20 ~50 ms, as latin1 ~1 ms, for the same string.
const script = new vm.Script(Module.wrap(readFileSync(file, 'latin1')), { filename: file, cachedData })
if (cachedData == null || script.cachedDataRejected === true) {
  try {
    writeFileSync(`${cacheFile}.${process.pid}`, script.createCachedData())
    renameSync(`${cacheFile}.${process.pid}`, cacheFile)
  } catch {
    // a read-only install: start without a cache
  }
}
const mod = new Module(file, module)
mod.filename = file
mod.paths = Module._nodeModulePaths(__dirname)
const requireFromBundle = Module.createRequire(file)
requireFromBundle.importEsm = (url) => import(url)
script.runInThisContext()(mod.exports, requireFromBundle, mod, file, __dirname)
