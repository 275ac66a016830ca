import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'

const run = promisify(execFile)

/** The components this package builds, by name → the function their entry runs. */
export const COMPONENT_ENTRIES = {
  'node-metrics': ['./node-metrics.ts', 'runNodeMetrics'],
  'log-shipper': ['./log-shipper.ts', 'runLogShipper'],
  fixture: ['./fixture.ts', 'runFixture']
} as const

export type ComponentName = keyof typeof COMPONENT_ENTRIES

export interface BuiltArtifact {
  name: ComponentName
  /** The .tar.gz */
  path: string
  /** "sha256:<hex>" */
  digest: string
  sizeBytes: number
  /** Entry inside the artifact. */
  entry: string
}

/** Where this file's sources are (resolved at run time: jest runs the TypeScript source). */
function srcDir(): string {
  return typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
}

/**
 * Builds a component artifact: one self-contained CommonJS bundle
 * (`index.cjs`, grpc-js and the contract included) in a reproducible
 * .tar.gz (sorted, zero mtimes and owners, gzip without a name), so the
 * same source always has the same digest.
 */
export async function buildComponentArtifact(
  name: ComponentName,
  outDir: string,
  options: {
    extraFiles?: Record<string, string>
    fileName?: string
    /** This package's src/ (when bundled elsewhere, e.g. into the bench). @default the directory of this file */
    srcDir?: string
  } = {}
): Promise<BuiltArtifact> {
  const [file, fn] = COMPONENT_ENTRIES[name]
  const work = await mkdtemp(join(tmpdir(), `myc-component-${name}-`))
  try {
    await build({
      stdin: {
        contents: `import { ${fn} } from '${file}'\n${fn}().catch((err) => { console.error(err); process.exit(1) })\n`,
        resolveDir: options.srcDir ?? srcDir(),
        loader: 'ts'
      },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      conditions: ['@mycelium/source'],
      outfile: join(work, 'index.cjs'),
      logLevel: 'silent',
      legalComments: 'none'
    })
    await writeFile(join(work, 'component.json'), JSON.stringify({ name, entry: 'index.cjs' }))
    // Extra files (a changelog, test variants): another digest for the same code.
    for (const [file, text] of Object.entries(options.extraFiles ?? {})) await writeFile(join(work, file), text)
    const path = join(outDir, options.fileName ?? `${name}.tar.gz`)
    await run('tar', [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-I',
      'gzip -n',
      '-cf',
      path,
      '-C',
      work,
      '.'
    ])
    const bytes = await readFile(path)
    return {
      name,
      path,
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      sizeBytes: (await stat(path)).size,
      entry: 'index.cjs'
    }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}
