import { runCli } from './cli.js'

// Output piped into a reader that went away (`| head`): nothing more to say.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
})

const stop = new AbortController()
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stop.signal.aborted) process.exit(130)
    stop.abort()
  })
}

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  signal: stop.signal
}).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`mycelium-conformance: unexpected error: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(101)
  }
)
