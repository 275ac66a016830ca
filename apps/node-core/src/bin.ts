import { IDLE_GC_V8_FLAG, applyDaemonV8Flags, startIdleGc } from './v8-flags.js'

/** The V8 flags this process set for itself: the release launcher's warm code cache is made and used under them. */
const v8Flags: string[] = []
// The daemon's V8 flags (see v8-flags.ts) must be in force before its dependencies load and
// compile (set after loading, idle RSS measured ~6 MB higher): hence cli is imported below, lazily.
if (process.argv.slice(2).find((a) => !a.startsWith('-')) === 'run') {
  v8Flags.push(...applyDaemonV8Flags())
  // Reconnections' promoted garbage would hold RSS in a sawtooth well above the live heap (see v8-flags.ts).
  startIdleGc()
  v8Flags.push(IDLE_GC_V8_FLAG)
}

/**
 * Set by the release launcher (launcher.cjs) on the `require` it gives the bundle: writes the
 * daemon's warm code cache. Absent when dist/bin.cjs runs directly.
 */
const launcher = require as NodeJS.Require & { codeCacheReady?: (v8Flags: string) => void }

let requestStop: () => void = () => undefined
const stopped = new Promise<void>((resolve) => {
  requestStop = resolve
})
let signals = 0
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // The first signal stops cleanly (components in reverse order); a second forces exit.
    if (++signals > 1) process.exit(130)
    requestStop()
  })
}

// Started by the slot launcher (an IPC channel): stop when it dies, so a restarted launcher never runs two agents.
if (process.channel != null) {
  process.channel.unref()
  process.on('disconnect', () => requestStop())
}

import('./cli.js')
  .then(({ runCli }) =>
    runCli(process.argv.slice(2), {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
      env: process.env,
      untilStopped: () => stopped,
      isTTY: process.stdout.isTTY === true,
      // By then the start has compiled what it runs: the cache holds it (launcher.cjs).
      firstManaged: () => launcher.codeCacheReady?.(v8Flags.join(' ')),
      // This process's own entry (dist/bin.cjs, or the release launcher), without the daemon's V8 flags.
      ...(process.argv[1] != null ? { csrCommand: [process.execPath, process.argv[1], 'csr-child'] } : {}),
      // An error escaping a component goes to the supervisor, not to a crash.
      onUnexpectedError: (handler) => {
        process.on('uncaughtException', handler)
        process.on('unhandledRejection', handler)
      }
    })
  )
  .then(
    (code) => process.exit(code),
    (err: unknown) => {
      const debug = process.argv.includes('--debug')
      process.stderr.write(
        `node-core: unexpected error: ${debug ? ((err as Error).stack ?? String(err)) : `${(err as Error).message} (--debug for the stack)`}\n`
      )
      process.exit(1)
    }
  )
