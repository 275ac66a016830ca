import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { until } from '@mycelium/testing'

/**
 * The built daemon copied out of the repository (as a package install would
 * place it: dist/ beside a node_modules), so the `protos/` fallback inside the
 * repo cannot hide a build that forgot to ship the v1 protos.
 */
const DIST = join(__dirname, '..', 'dist')
const APP_NODE_MODULES = join(__dirname, '..', 'node_modules')
const REPO_NODE_MODULES = join(__dirname, '..', '..', '..', 'node_modules')

describe('the built daemon outside the repository', () => {
  let dir: string
  beforeAll(() => {
    if (!existsSync(join(DIST, 'bin.cjs')))
      throw new Error(`${DIST}/bin.cjs is missing: build first (npx nx run @mycelium/node-core:build)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-outside-'))
    // <dir>/app/dist with the app's own dependencies beside it and the hoisted ones above, as npm lays them out.
    cpSync(DIST, join(dir, 'app', 'dist'), { recursive: true })
    if (existsSync(APP_NODE_MODULES)) symlinkSync(APP_NODE_MODULES, join(dir, 'app', 'node_modules'))
    symlinkSync(REPO_NODE_MODULES, join(dir, 'node_modules'))
    mkdirSync(join(dir, 'tmp'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('ships the v1 protos beside the bundle', () => {
    expect(readdirSync(join(dir, 'app', 'dist', 'protos', 'mycelium', 'core', 'v1'))).toContain('node_status.proto')
  })

  it('prints its help', async () => {
    const child = spawn(process.execPath, [join(dir, 'app', 'dist', 'bin.cjs'), '--help'], {
      cwd: join(dir, 'app'),
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    expect([code, out]).toEqual([0, expect.stringContaining('Usage: node-core')])
  })

  it('starts `dev` (status server with reflection over the shipped protos) and stops on SIGTERM', async () => {
    // TMPDIR: the dev network, its agents and the default status socket stay inside this test's directory.
    const child = spawn(process.execPath, [join(dir, 'app', 'dist', 'bin.cjs'), 'dev', '--log-level', 'warn'], {
      cwd: join(dir, 'app'),
      env: { ...process.env, TMPDIR: join(dir, 'tmp') },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    let exit: number | null | undefined
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve((exit = code))))
    try {
      await until(
        'dev network up, or an exit',
        async () => exit !== undefined || out.includes('Mycelium dev network with 1 agent(s)'),
        60_000
      )
      expect(out).not.toContain('protos not found')
      expect(exit).toBeUndefined()
      const http = /http:\s+http:\/\/([^/]+)\/readyz/.exec(out)?.[1]
      await until('MANAGED on /readyz', async () => (await fetch(`http://${http}/readyz`).catch(() => undefined))?.status === 200, 30_000)
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  }, 120_000)
})
