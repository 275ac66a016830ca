import { runCli } from './cli.js'

/** Exit code of an unexpected error (a bug, not bad input): EX_SOFTWARE. */
const EXIT_INTERNAL = 70
const debug = process.argv.includes('--debug')

runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  now: () => Date.now()
}).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // One line; the stack only when asked for.
    const text = debug
      ? ((err as Error).stack ?? String(err))
      : `${(err as Error).name}: ${(err as Error).message} (run with --debug for the stack)`
    process.stderr.write(`spore: unexpected error: ${text}\n`)
    process.exitCode = EXIT_INTERNAL
  }
)
