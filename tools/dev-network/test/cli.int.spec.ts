import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { runCli, type DevNetwork } from '../src/index.js'

function io() {
  let stop: () => void = () => undefined
  const stopped = new Promise<void>((r) => (stop = r))
  const lines = { out: '', err: '' }
  return {
    lines,
    stop: () => stop(),
    io: { out: (t: string) => void (lines.out += t), err: (t: string) => void (lines.err += t), untilStopped: () => stopped }
  }
}

async function up(dir: string): Promise<{ net: DevNetwork; stop: () => Promise<number>; out: () => string }> {
  const h = io()
  let resolveNet: (n: DevNetwork) => void = () => undefined
  const started = new Promise<DevNetwork>((r) => (resolveNet = r))
  const running = runCli(['up', '--dir', dir, '--network', 'demo', '--heartbeat', '500ms'], h.io, resolveNet)
  const net = await Promise.race([started, running.then((code) => Promise.reject(new Error(`up exited ${code}: ${h.lines.err}`)))])
  return { net, stop: () => (h.stop(), running), out: () => h.lines.out }
}

describe('dev-network CLI', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dev-net-cli-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('up prints endpoints and a join token; fault changes the running network; state survives a restart', async () => {
    const first = await up(dir)
    expect(first.out()).toContain(`network manager  ${first.net.endpoints.networkManager}`)
    expect(first.out()).toContain(`join token       ${first.net.joinToken}`)
    const ca = first.net.caPem

    const f = io()
    expect(await runCli(['fault', '--dir', dir, 'refuse', 'network-manager', 'UNAVAILABLE'], f.io)).toBe(0)
    expect(f.lines.out).toContain('network-manager refuses calls with UNAVAILABLE')
    expect(first.net.faults['network-manager'].refuseWith).toBe(grpc.status.UNAVAILABLE)
    expect(await runCli(['fault', '--dir', dir, 'ignore-handoff', 'on'], f.io)).toBe(0)
    expect(first.net.networkManager.handoffFaults.ignoreHandoff).toBe(true)
    expect(await runCli(['fault', '--dir', dir, 'stop', 'spore-manager'], f.io)).toBe(0)
    expect(await runCli(['fault', '--dir', dir, 'start', 'spore-manager'], f.io)).toBe(0)
    expect(await runCli(['fault', '--dir', dir, 'join-token'], f.io)).toBe(0)
    expect(f.lines.out).toMatch(/myc1\.demo\./)

    const bad = io()
    expect(await runCli(['fault', '--dir', dir, 'refuse', 'network-manager', 'SOMETIMES'], bad.io)).toBe(1)
    expect(bad.lines.err).toContain('code must be "off" or a gRPC status name')
    expect(await runCli(['fault', '--dir', dir, 'stop', 'the-moon'], bad.io)).toBe(1)
    expect(bad.lines.err).toContain('manager must be one of network-manager, spore-manager')

    expect(await first.stop()).toBe(0)
    const second = await up(dir)
    try {
      expect(second.net.caPem).toBe(ca)
      expect(second.net.state.joinTokens.length).toBe(2)
      expect(readFileSync(join(dir, 'endpoints.json'), 'utf8')).toContain(second.net.endpoints.networkManager)
    } finally {
      await second.stop()
    }
  })

  it('fault without a running network says how to start one', async () => {
    const h = io()
    expect(await runCli(['fault', '--dir', dir, 'kill-streams'], h.io)).toBe(1)
    expect(h.lines.err).toContain(`no running dev-network found in ${dir}`)
  })
})
