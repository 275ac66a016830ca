#!/usr/bin/env node
// Fails when the committed generated code differs from what `buf generate`
// produces from protos/ now: someone edited a generated file by hand, or
// changed a .proto without regenerating (`npm run generate`).
// Generates into a temporary directory, so the work tree is never touched.
// Usage (from the repo root): node scripts/check-generated.mjs <buf.gen template> <generated dir>
// e.g. protos/buf.gen.yaml packages/core-interfaces/src/generated.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const [TEMPLATE, GENERATED] = process.argv.slice(2)
if (TEMPLATE == null || GENERATED == null) {
  console.error('usage: node scripts/check-generated.mjs <buf.gen template> <generated dir>')
  process.exit(2)
}

function listFiles(dir) {
  const out = []
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else out.push(relative(dir, p))
    }
  }
  walk(dir)
  return out.sort()
}

const scratch = mkdtempSync(join(tmpdir(), 'mycelium-gen-'))
try {
  execFileSync('npx', ['buf', 'generate', '--template', TEMPLATE, '-o', scratch], { stdio: 'inherit' })
  const fresh = join(scratch, GENERATED)
  const want = listFiles(fresh)
  const have = listFiles(GENERATED)
  const problems = []
  for (const f of want) {
    if (!have.includes(f)) problems.push(`missing: ${GENERATED}/${f}`)
    else if (!readFileSync(join(fresh, f)).equals(readFileSync(join(GENERATED, f)))) {
      problems.push(`differs from generator output: ${GENERATED}/${f}`)
    }
  }
  for (const f of have) if (!want.includes(f)) problems.push(`not produced by the generator: ${GENERATED}/${f}`)
  if (problems.length > 0) {
    console.error(`Generated code is out of date (${problems.length} file(s)):\n  ${problems.join('\n  ')}`)
    console.error('Run `npm run generate` and commit the result; never edit generated files by hand.')
    process.exit(1)
  }
  console.log(`Generated code in ${GENERATED} matches protos/ (${want.length} files).`)
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
