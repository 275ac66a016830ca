import { runCli } from './cli.js'

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  now: () => Date.now()
}).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`spore: unexpected error: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 70
  }
)
