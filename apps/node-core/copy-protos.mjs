// Copies the v1 .proto files beside the bundle (dist/protos/mycelium), after
// every tsup config has finished: the status server loads them at run time
// (server reflection), also outside the repository. Run by the `build` script
// once tsup has exited, so no config's clean can race it.
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const from = join(here, '..', '..', 'protos', 'mycelium')
const to = join(here, 'dist', 'protos', 'mycelium')
rmSync(join(here, 'dist', 'protos'), { recursive: true, force: true })
mkdirSync(to, { recursive: true })
cpSync(from, to, { recursive: true })
const required = join(to, 'core', 'v1', 'node_status.proto')
if (!existsSync(required)) throw new Error(`protos copy incomplete: ${required} is missing`)
console.log(`copied ${readdirSync(join(to, 'core', 'v1')).length} v1 protos to ${to}`)
