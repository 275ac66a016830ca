#!/usr/bin/env node
// `npm start`: builds node-core (and what it needs; Nx caches it) and runs
// `node-core dev` — a dev network embedded in the process and an agent that
// hands off to it, logged live. Ctrl-C stops everything cleanly.
// Extra arguments are passed on: `npm start -- --agents 3`.
import { spawnSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const build = spawnSync('npx', ['nx', 'run', '@mycelium/node-core:build', '--output-style=dynamic-legacy'], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit'],
  env: { ...process.env, NX_DAEMON: process.env.NX_DAEMON ?? 'false' }
})
if (build.status !== 0) process.exit(build.status ?? 1)
// The child runs in its own process group (detached), so a terminal's Ctrl-C reaches it once,
// forwarded from here like a SIGTERM sent to this process (a service manager, `kill`): each
// signal arrives exactly once, and a second one forces the child's exit as it would directly.
const child = spawn(process.execPath, ['apps/node-core/dist/bin.cjs', 'dev', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  detached: true
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal != null ? 130 : 1)))
