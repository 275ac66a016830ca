// `npm run package`: the release artifact, release/node-core-<version>-linux-<arch>.tar.gz.
//
// One directory, no node_modules, runs on any Node >= 20:
//   node-core.cjs           the entry: compiles the bundle with the V8 code cache (launcher.cjs)
//   node-core-main.cjs      the daemon and CLI, every dependency inlined (esbuild, minified)
//   node-core-main.cjs.cache  its V8 code cache, made by the node that packaged it
//   node-core-help.txt      the bundle's `--help` output: the launcher prints it without loading the bundle
//   slot-launcher.cjs       the A/B slot launcher (the unit's ExecStart; installed once beside slots/)
//   kubernetes-client.mjs   @kubernetes/client-node (ESM-only, 3.6 MB), loaded only on
//                           K3s servers on first use
//   chunks/*.cjs            dependencies an idle node never runs (LAZY_CHUNKS), each loaded on first use
//   protos/                 the v1 .proto files server reflection loads at run time
//   vendor/                 .proto files bundled packages read at run time (health, reflection)
//   mycelium-node.service   the systemd unit
//   node.example.yaml       a sample config
//   SHA256SUMS              sha256sum -c format, for every file above
// and beside the tarball its own checksum (<tarball>.sha256). The dev network
// (`node-core dev`) is a development tool and is not in the artifact.
//
// Input: dist/bin.cjs (the `build` target). The bench and the e2e tests run
// this artifact; see README.md "Install on a node".
import { build } from 'esbuild'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const here = dirname(fileURLToPath(import.meta.url))
const { version: builtVersion } = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'))
// `--version <v>` stamps another version into the same code (self-update tests need a higher one);
// `--out <dir>` writes there instead of release/ (which is emptied first).
const argOf = (flag) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined)
const version = argOf('--version') ?? builtVersion
const name = `node-core-${version}-linux-${process.arch}`
const releaseDir = argOf('--out') ?? join(here, 'release')
const stage = join(releaseDir, name)
const bin = join(here, 'dist', 'bin.cjs')
if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (npx nx run @mycelium/node-core:build)`)

rmSync(releaseDir, { recursive: true, force: true })
mkdirSync(stage, { recursive: true })

/** Resolved at run time beside the bundle, never inlined. */
const KUBERNETES_CHUNK = './kubernetes-client.mjs'
/** Their .proto files, copied to vendor/<package>/<path>. */
const VENDORED_PROTOS = [
  ['grpc-health-check', 'proto'],
  ['@grpc/reflection', 'build/proto']
]
const VENDORED_PROTO_FILES = /node_modules\/(grpc-health-check|@grpc\/reflection)\/build\/src\/.*\.js$/
/**
 * Dependencies an idle node never runs, each group its own CommonJS file in chunks/,
 * required on the first use of any of its packages: V8 keeps the whole source text of
 * a script it runs (~1 byte per byte of bundle, for lazy compilation), so code that
 * is only bundled still costs idle RSS. A package here is, in the bundle, a proxy
 * whose first property read loads the chunk (self-update imports tar at the top,
 * and only untars on an update). Each chunk inlines its own dependencies; none of
 * them shares state with the bundle (checked: no chunk inlines a package the
 * bundle also holds, see below).
 */
const LAZY_CHUNKS = {
  // self-update and components: unpacking a release or a component archive
  tar: ['tar'],
  // enrolment and certificate renewal (basic-net x509.ts): only when the identity is missing or renewing
  x509: ['@peculiar/x509', 'reflect-metadata'],
  // server reflection: on the first reflection call (status-server.ts; grpc-health-check for its health.proto's path)
  // (@bufbuild/protobuf: its root and wkt entries, reflection's descriptors; its wire codec stays in the bundle, see WIRE_ENTRY)
  reflection: ['protobufjs', '@grpc/proto-loader', '@grpc/reflection', 'grpc-health-check', '@bufbuild/protobuf'],
  // the first /metrics scrape (http-server.ts)
  metrics: ['prom-client'],
  // reading a YAML config (config.ts, at start and on `config validate`) and writing K3s's config (k3s-runtime)
  yaml: ['yaml']
}
/**
 * Chunks loaded afresh on each use and collectable after it (TRANSIENT_CHUNKS ⊂ LAZY_CHUNKS):
 * the proxy holds the chunk's exports only weakly, so once no object the package made is
 * referenced, V8 frees its code and source. For stateless packages only, whose objects do
 * not depend on module identity: `yaml` is run once at start to parse the config into plain
 * values (its node guards such as isMap use Symbol.for, not instanceof) and kept nothing
 * (~0.5 MB of idle heap measured). A use spanning two loads sees two instances.
 */
const TRANSIENT_CHUNKS = new Set(['yaml'])

/** What a chunk's stand-in module exports: a view that loads the chunk (`load()`) on first touch. */
const CHUNK_EXPORTS = `module.exports = new Proxy({}, {
  get: (_, k) => load()[k],
  has: (_, k) => k in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(load(), k); return d && { ...d, configurable: true } }
})`
/**
 * @bufbuild/protobuf's wire entry, narrowed to the file that defines what the bundle takes from it
 * (BinaryReader, BinaryWriter, WireType: the generated codecs and core-interfaces' wire.ts). The
 * entry's index also loads size-delimited and text-format, and through them the package's
 * reflection half (registry, descriptors, JSON): ~150 KB of source V8 would keep and the daemon
 * never runs. That half is in the reflection chunk, with the package's root and wkt entries.
 * Checked below: every name a bundled module reads from the entry is defined by the file.
 */
const WIRE_ENTRY = '@bufbuild/protobuf/wire'
const wireFile = join(createRequire(bin).resolve(WIRE_ENTRY), '..', 'binary-encoding.js')
/**
 * Modules the reflection chunk may inline beside the bundle's copy: the narrowed wire codec and
 * what it requires. Stateless (classes and pure functions; the text encoder each copy caches is
 * node's own), so two copies share nothing that matters.
 */
const STATELESS_SHARED = /node_modules\/@bufbuild\/protobuf\/dist\/cjs\/(wire\/(binary-encoding|varint|text-encoding)|proto-int64)\.js$/
const chunkOf = new Map(Object.entries(LAZY_CHUNKS).flatMap(([chunk, pkgs]) => pkgs.map((p) => [p, chunk])))
const lazyFilter = new RegExp(`^(${[...chunkOf.keys()].map((p) => p.replace(/[/.]/g, '\\$&')).join('|')})(/.*)?$`)
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  minify: true,
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning'
}

const mainBuild = await build({
  ...common,
  // Minified names, not kept: `keepNames` redefines the `name` of every function and class
  // (esbuild's __name), which turns ~1,800 closures' properties into dictionaries — 1.0 MB of
  // idle heap and RSS measured (tools/bench footprint, same run: 57.4 → 56.4 MB). Nothing in the
  // bundle reads a function's name: errors carry an explicit `name` (their `isX` guards compare
  // it) and commander's, which take `constructor.name`, are matched with instanceof. Chunks keep
  // their names (third-party code; loaded rarely).
  keepNames: false,
  metafile: true,
  entryPoints: [bin],
  format: 'cjs',
  // No `import()` left in the bundle: Node 20 loses a vm.Script's dynamic-import callback when the
  // script comes from a code cache ("A dynamic import callback was not specified"). Bundled and
  // CommonJS modules become require(); the ESM chunk goes through the launcher's import (below).
  supported: { 'dynamic-import': false },
  outfile: join(stage, 'node-core-main.cjs'),
  plugins: [
    {
      name: 'release-externals',
      setup(b) {
        b.onLoad({ filter: /dist\/bin\.cjs$/ }, (args) => {
          const text = readFileSync(args.path, 'utf8')
          const stamp = `name: "@mycelium/node-core",\n      version: "${builtVersion}",`
          if (version !== builtVersion && !text.includes(stamp)) throw new Error(`${args.path}: no version stamp to replace`)
          return { contents: text.replace(stamp, stamp.replace(builtVersion, version)), loader: 'js' }
        })
        // The lazily loaded chunk: `import('@kubernetes/client-node')` becomes an import of the file beside the bundle.
        b.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: KUBERNETES_CHUNK, external: true }))
        // The lazily loaded ESM chunk, by absolute URL, through `require.importEsm` (the launcher's own
        // `import()`, see launcher.cjs): the bundle itself holds no `import()` (see `supported` above).
        b.onLoad({ filter: /k3s-runtime\/dist\/index\.cjs$/ }, (args) => {
          const text = readFileSync(args.path, 'utf8')
          const call = "import('@kubernetes/client-node')"
          if (!text.includes(call)) throw new Error(`${args.path}: ${call} not found; the Kubernetes client chunk would not load`)
          return {
            contents: text.replace(
              call,
              `require.importEsm(require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(KUBERNETES_CHUNK)})).href)`
            ),
            loader: 'js'
          }
        })
        // Packages that read their own .proto files at run time from `__dirname/../../proto`:
        // their __dirname points into vendor/<package>/ beside the bundle, where the protos are copied.
        b.onLoad({ filter: VENDORED_PROTO_FILES }, (args) => {
          const [, pkg, rel] = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(args.path)
          const dir = JSON.stringify(join('vendor', pkg, dirname(rel)))
          return {
            contents: readFileSync(args.path, 'utf8').replace(/\b__dirname\b/g, `require("node:path").join(__dirname, ${dir})`),
            loader: 'js'
          }
        })
        b.onResolve({ filter: new RegExp(`^${WIRE_ENTRY}$`) }, () => ({ path: wireFile }))
        // A lazily loaded package (LAZY_CHUNKS): a proxy that requires its chunk on first use.
        b.onResolve({ filter: lazyFilter }, (args) => ({ path: args.path, namespace: 'lazy-chunk' }))
        b.onResolve({ filter: /^\.\/chunks\// }, (args) => ({ path: args.path, external: true }))
        b.onLoad({ filter: /.*/, namespace: 'lazy-chunk' }, (args) => {
          const chunk = chunkOf.get(lazyFilter.exec(args.path)[1])
          if (TRANSIENT_CHUNKS.has(chunk))
            return {
              // Compiled from its file on each load (no require cache, no parent module holding it), kept
              // through a WeakRef: V8 keeps it for at least the current job, so one synchronous use sees one instance.
              contents: `let ref
const load = () => {
  let m = ref?.deref()
  if (m == null) {
    const file = require("node:path").join(__dirname, ${JSON.stringify(`chunks/${chunk}.cjs`)})
    const mod = { exports: {} }
    require("node:vm").compileFunction(require("node:fs").readFileSync(file, "latin1"), ["exports", "require", "module", "__filename", "__dirname"], { filename: file })(mod.exports, require, mod, file, require("node:path").dirname(file))
    m = mod.exports[${JSON.stringify(args.path)}]
    ref = new WeakRef(m)
  }
  return m
}
${CHUNK_EXPORTS}`,
              loader: 'js'
            }
          return {
            contents: `let m
const load = () => (m ??= require(${JSON.stringify(`./chunks/${chunk}.cjs`)})[${JSON.stringify(args.path)}])
${CHUNK_EXPORTS}`,
            loader: 'js'
          }
        })
        // The dev network issues certificates: a development tool, not shipped. `node-core dev` says how to get it.
        b.onResolve({ filter: /^@mycelium\/dev-network$/ }, () => ({ path: '@mycelium/dev-network', external: true }))
      }
    }
  ]
})

// The launcher compiles it as a function body: no shebang (dist/bin.cjs has one).
const main = join(stage, 'node-core-main.cjs')
writeFileSync(main, readFileSync(main, 'utf8').replace(/^#!.*\n/, ''))
// The launcher reads it as latin1 (50× faster than utf8 on Node 20): esbuild escapes non-ASCII (charset ascii).
if (readFileSync(main).some((byte) => byte > 0x7f)) throw new Error(`${main} is not ASCII: the launcher reads it as latin1`)
// (`import(` calls; not method definitions such as @peculiar/x509's `import(t,r){`)
if (/(?<![\w$.])import\((?![\w$,]*\)\{)/.test(readFileSync(main, 'utf8')))
  throw new Error(`${main} still holds an import(): it would fail under the code cache`)

// No module twice: a dual package's ESM and CommonJS builds of one file. An `import()` of a dual
// package (the workspace libraries ship both) resolves to its ESM build while `require` resolves to
// the CommonJS one, and the bundle would hold and run both (the generated contracts twice).
// dist/bin.cjs lowers its `import()`s of packages to lazy `require`s (tsup.config.mjs); one a
// library adds is refused here.
const builds = new Map()
for (const file of Object.keys(mainBuild.metafile.inputs)) {
  const key = file.replace(/\/(esm|cjs)\//, '/*/').replace(/\.(c|m)?js$/, '')
  if (builds.has(key)) throw new Error(`the bundle holds two builds of one module: ${builds.get(key)} and ${file}`)
  builds.set(key, file)
}

// What the bundle reads from the narrowed wire entry: `[var ]<name> = require("@bufbuild/protobuf/wire")`, then `<name>.X`.
const wireExports = new Set(Object.keys(createRequire(bin)(wireFile)))
for (const [file, input] of Object.entries(mainBuild.metafile.inputs)) {
  if (!input.imports.some((i) => i.original === WIRE_ENTRY)) continue
  const text = readFileSync(file, 'utf8')
  const vars = [...text.matchAll(/(?<![\w$.])([\w$]+) = require\(["']@bufbuild\/protobuf\/wire["']\)/g)].map((m) => m[1])
  if (vars.length === 0) throw new Error(`${file}: imports ${WIRE_ENTRY} in a form this check cannot read; see WIRE_ENTRY`)
  for (const v of vars)
    for (const [, used] of text.matchAll(new RegExp(`(?<![\\w$.])${v.replace(/\$/g, '\\$')}\\.([\\w$]+)`, 'g')))
      if (!wireExports.has(used))
        throw new Error(`${file} reads ${used} from ${WIRE_ENTRY}, which ${wireFile} does not define: see WIRE_ENTRY`)
}

// The lazy chunks: each exports its packages by name (every subpath the bundle imports).
const imported = new Map()
for (const file of Object.keys(mainBuild.metafile.inputs)) {
  if (!file.startsWith('lazy-chunk:')) continue
  const spec = file.slice('lazy-chunk:'.length)
  const chunk = chunkOf.get(lazyFilter.exec(spec)[1])
  imported.set(chunk, [...(imported.get(chunk) ?? []), spec])
}
const bundled = new Set(Object.keys(mainBuild.metafile.inputs))
for (const [chunk, specs] of imported) {
  const out = await build({
    ...common,
    metafile: true,
    stdin: {
      contents: `module.exports = {${specs.map((p) => `${JSON.stringify(p)}: require(${JSON.stringify(p)})`).join(', ')}}`,
      resolveDir: here
    },
    format: 'cjs',
    supported: { 'dynamic-import': false },
    outfile: join(stage, 'chunks', `${chunk}.cjs`),
    plugins: [
      {
        name: 'vendored-protos',
        setup(b) {
          b.onLoad({ filter: VENDORED_PROTO_FILES }, (args) => {
            const [, pkg, rel] = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(args.path)
            const dir = JSON.stringify(join('..', 'vendor', pkg, dirname(rel)))
            return {
              contents: readFileSync(args.path, 'utf8').replace(/\b__dirname\b/g, `require("node:path").join(__dirname, ${dir})`),
              loader: 'js'
            }
          })
        }
      }
    ]
  })
  // Transient chunks are read as latin1 (see the bundle above).
  if (TRANSIENT_CHUNKS.has(chunk) && readFileSync(join(stage, 'chunks', `${chunk}.cjs`)).some((byte) => byte > 0x7f))
    throw new Error(`chunk ${chunk} is not ASCII: it is read as latin1`)
  // A module in both would be two instances (two registries, two classes): the chunk must be self-contained.
  const shared = Object.keys(out.metafile.inputs).filter((f) => bundled.has(f) && f.includes('node_modules') && !STATELESS_SHARED.test(f))
  if (shared.length > 0) throw new Error(`chunk ${chunk} and the bundle both inline ${shared.slice(0, 5).join(', ')}: move them together`)
}
if (imported.size !== Object.keys(LAZY_CHUNKS).length)
  throw new Error(
    `no chunk for ${Object.keys(LAZY_CHUNKS)
      .filter((c) => !imported.has(c))
      .join(', ')}: the bundle no longer imports it (drop it from LAZY_CHUNKS)`
  )

// ESM-only: an ESM chunk, with `require` for the CommonJS packages it inlines.
await build({
  ...common,
  stdin: { contents: "export * from '@kubernetes/client-node'", resolveDir: here },
  format: 'esm',
  outfile: join(stage, KUBERNETES_CHUNK),
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" }
})

cpSync(join(here, 'dist', 'protos'), join(stage, 'protos'), { recursive: true })
const require = createRequire(join(here, 'dist', 'bin.cjs'))
for (const [pkg, protos] of VENDORED_PROTOS) {
  cpSync(join(dirname(require.resolve(`${pkg}/package.json`)), protos), join(stage, 'vendor', pkg, protos), { recursive: true })
}
cpSync(join(here, 'launcher.cjs'), join(stage, 'node-core.cjs'))
cpSync(join(here, 'slot-launcher.cjs'), join(stage, 'slot-launcher.cjs'))
// The code cache, made by this node: the launcher writes it itself on its first start if it is missing.
// The same run's output (not a terminal: 80 columns) is the help text the launcher answers `--help` with.
const help = execFileSync(process.execPath, [join(stage, 'node-core.cjs'), '--help'], { stdio: ['ignore', 'pipe', 'ignore'] })
if (!existsSync(join(stage, 'node-core-main.cjs.cache'))) throw new Error('the launcher wrote no code cache')
if (!help.toString().startsWith('Usage: node-core')) throw new Error(`node-core --help printed no usage: ${help.toString().slice(0, 200)}`)
writeFileSync(join(stage, 'node-core-help.txt'), help)
cpSync(join(here, 'deploy', 'mycelium-node.service'), join(stage, 'mycelium-node.service'))
cpSync(join(here, 'node.example.yaml'), join(stage, 'node.example.yaml'))
chmodSync(join(stage, 'node-core.cjs'), 0o755)

const files = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]))
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex')
const sums = files(stage)
  .map((f) => relative(stage, f))
  .sort()
  .map((f) => `${sha256(join(stage, f))}  ${f}\n`)
writeFileSync(join(stage, 'SHA256SUMS'), sums.join(''))

// Reproducible: sorted names, fixed owner and mtime (GNU tar).
const tarball = join(releaseDir, `${name}.tar.gz`)
execFileSync('tar', [
  '--sort=name',
  '--owner=0',
  '--group=0',
  '--numeric-owner',
  '--mtime=@0',
  '--use-compress-program=gzip -n',
  '-cf',
  tarball,
  '-C',
  releaseDir,
  name
])
writeFileSync(`${tarball}.sha256`, `${sha256(tarball)}  ${name}.tar.gz\n`)
const mb = (f) => (statSync(f).size / 1e6).toFixed(2)
const summary = `${relative(here, tarball)}: ${mb(tarball)} MB (node-core-main.cjs ${mb(join(stage, 'node-core-main.cjs'))} MB, kubernetes-client.mjs ${mb(join(stage, KUBERNETES_CHUNK))} MB)`
rmSync(stage, { recursive: true, force: true })
console.log(summary)
