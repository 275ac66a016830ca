// The long fuzz run for humans: the property tests of every package, with
// many more runs than CI does (CI runs the same files with FUZZ_RUNS unset).
//   npm run fuzz                # FUZZ_RUNS=5000
//   FUZZ_RUNS=50000 npm run fuzz
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const runs = process.env.FUZZ_RUNS ?? '5000'
const suites = [
  ['packages/core-interfaces', 'test/fuzz-decode.spec.ts'],
  ['packages/spore-client', 'test/hostile.spec.ts'],
  ['apps/node-core', 'test/hostile-config.int.spec.ts'],
  ['apps/node-core', 'test/hostile-table.int.spec.ts']
]
let failed = 0
for (const [dir, file] of suites) {
  process.stdout.write(`\n== ${dir}/${file} (FUZZ_RUNS=${runs})\n`)
  const r = spawnSync('npx', ['jest', '--testTimeout=600000', file], {
    cwd: join(root, dir),
    stdio: 'inherit',
    env: { ...process.env, FUZZ_RUNS: runs }
  })
  if (r.status !== 0) failed++
}
process.exitCode = failed > 0 ? 1 : 0
