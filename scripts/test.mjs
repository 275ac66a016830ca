#!/usr/bin/env node
/**
 * `npm test`: every project's tests, then the fleet-scale test alone.
 *
 * The fleet test (tools/bench: 300 agents across processes and a manager
 * restart) keeps both cores busy for about a minute; beside other suites it
 * would slow every test that waits for a real process or a deadline. So it
 * runs after them, by itself. Extra arguments (`npm test -- --skip-nx-cache`)
 * go to both runs; a failure of the first run still runs the second, and the
 * exit code is the first failure's.
 */
import { spawnSync } from 'node:child_process'

const FLEET = '@mycelium/bench'
const args = process.argv.slice(2)
const nx = (extra) =>
  spawnSync('npx', ['nx', 'run-many', '-t', 'test', '--outputStyle=stream', ...extra, ...args], { stdio: 'inherit' }).status ?? 1

const rest = nx([`--exclude=${FLEET}`])
const fleet = nx(['-p', FLEET])
process.exit(rest !== 0 ? rest : fleet)
