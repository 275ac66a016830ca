import { runCli } from './cli.js'

let stopRequested: () => void = () => undefined
const stopped = new Promise<void>((resolve) => {
  stopRequested = resolve
})
let signals = 0
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // A second signal does not wait for a clean stop.
    if (++signals > 1) process.exit(130)
    stopRequested()
  })
}

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  untilStopped: () => stopped
}).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const debug = process.argv.includes('--debug')
    const text = debug ? ((err as Error).stack ?? String(err)) : `${(err as Error).message} (--debug for the stack)`
    process.stderr.write(`dev-network: unexpected error: ${text}\n`)
    process.exit(70)
  }
)
