import { say, serveComponent } from './component-server.js'

/**
 * A component that misbehaves on purpose, for the manager's bad-input tests
 * (argument `--mode`): `ok` (answers, no work), `busy` (counts each Health call as work), `crash`
 * (exits 3 before listening), `silent` (never listens), `contract2` (speaks
 * only contract version 2), `crash-later` (answers Hello, exits 4 after
 * `--after-ms`).
 */
export async function runFixture(argv: string[] = process.argv): Promise<void> {
  const arg = (k: string): string | undefined => {
    const i = argv.indexOf(k)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const mode = arg('--mode') ?? 'ok'
  const version = arg('--version') ?? '1.0.0'
  say(`fixture mode ${mode}`)
  if (mode === 'crash') process.exit(3)
  if (mode === 'silent') {
    setInterval(() => undefined, 1 << 30)
    return
  }
  let work = 0
  await serveComponent({
    name: arg('--name') ?? 'fixture',
    version,
    contract: mode === 'contract2' ? [2, 2] : [1, 1],
    begin: (parameters) => {
      say(`begin ${JSON.stringify(parameters)}`)
      if (mode === 'crash-later') setTimeout(() => process.exit(4), Number(arg('--after-ms') ?? 200))
    },
    health: () => ({ healthy: true, workCount: mode === 'busy' ? work++ : work }),
    end: () => undefined
  })
}
