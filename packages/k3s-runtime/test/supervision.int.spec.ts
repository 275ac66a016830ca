/**
 * Supervision of a real child process: the stand-in K3s (test/fixtures/
 * fake-k3s.mjs) behaves like K3s at the process boundary — `server --config`,
 * kubeconfig, /readyz over HTTPS with client certificates, crashes on request.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Availability, K3sConfig, K3sRole, type Logger, type LogFields } from '@mycelium/core-interfaces'
import { FAKE_K3S, until as untilTrue } from '@mycelium/testing'
import { createK3sRuntime, processStartTime, type K3sRuntimeInit } from '../src/index.js'

interface Line {
  level: string
  msg: string
  fields: LogFields
}

function capturingLogger(lines: Line[], base: LogFields = {}): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: LogFields = {}): void => {
      lines.push({ level, msg, fields: { ...base, ...fields } })
    }
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    forComponent: (name) => capturingLogger(lines, { ...base, component: name }),
    child: (fields) => capturingLogger(lines, { ...base, ...fields })
  }
}

/** This suite's waits: 15 s, 25 ms polls (child processes start a node each). */
const until = <T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> => untilTrue(what, probe, timeoutMs, 25)

function alive(pid: number): boolean {
  return processStartTime(pid) != null
}

/** The process group of `pid` (field 5 of /proc/<pid>/stat). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
}

describe('K3s supervision (stand-in K3s as a real child process)', () => {
  let root: string
  const everyPid = new Set<number>()

  const starts = (dataDir: string): Array<{ pid: number; config: Record<string, unknown> }> => {
    const file = join(dataDir, 'starts.log')
    if (!existsSync(file)) return []
    const list = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { pid: number; config: Record<string, unknown> })
    for (const s of list) everyPid.add(s.pid)
    return list
  }

  function runtime(
    name: string,
    over: Partial<K3sConfig> = {},
    env: Record<string, string> = {},
    tuning: K3sRuntimeInit['supervisor'] = {},
    lines: Line[] = []
  ) {
    const dataDir = join(root, name, 'data')
    const k3s = K3sConfig.fromPartial({
      enabled: true,
      role: K3sRole.SERVER,
      binaryPath: FAKE_K3S,
      dataDir,
      extraArgs: ['--https-listen-port', '0'],
      criSocket: join(root, name, 'no-cri.sock'),
      ...over
    })
    const init: K3sRuntimeInit = {
      k3s,
      nodeId: 'node-7',
      stateDir: join(root, name, 'state'),
      workloadsIntervalMs: 60_000,
      supervisor: {
        probeIntervalMs: 50,
        monitorIntervalMs: 50,
        stopTimeoutMs: 5000,
        restartBackoff: { initialMs: 100, maxMs: 400 },
        env: { ...process.env, ...env },
        ...tuning
      }
    }
    return { rt: createK3sRuntime({ logger: capturingLogger(lines) }, init), k3s, dataDir, init, lines }
  }

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'mycelium-k3s-sup-'))
  })

  afterAll(() => {
    // Every stand-in ever started here (each appends its PID to its data dir's starts.log).
    for (const name of readdirSync(root)) starts(join(root, name, 'data'))
    for (const pid of everyPid) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true })
  })

  it('starts K3s in its own process group, sends its output to the logger, and reports ready once /readyz answers', async () => {
    const { rt, dataDir, init, lines } = runtime('ready', {}, { FAKE_K3S_READY_DELAY_MS: '300' })
    await rt.start()
    try {
      expect(rt.capability().availability).toBe(Availability.DEGRADED) // running, not ready yet
      await until('ready', () => rt.capability().availability === Availability.AVAILABLE)
      expect(rt.capability()).toEqual({ name: 'k3s', availability: Availability.AVAILABLE, version: 'v1.30.4+k3s1', reason: '' })
      const { pid } = rt.processStatus()!
      expect(processGroup(pid!)).toBe(pid)
      expect(processGroup(pid!)).not.toBe(processGroup(process.pid))
      expect(existsSync(join(init.stateDir!, 'k3s', 'kubeconfig.yaml'))).toBe(true)
      const [first] = starts(dataDir)
      expect(first!.config).toMatchObject({ 'node-name': 'node-7', disable: ['traefik', 'servicelb', 'metrics-server', 'local-storage'] })
      // The Kubernetes API view of the supervised server, through the kubeconfig it wrote.
      expect(await rt.kubernetes()).toEqual({ nodes: [expect.objectContaining({ name: 'node-7', ready: true })], pods: [] })
      await rt.writeSnapshot() // what a diagnostics dump carries
      expect(JSON.parse(readFileSync(join(init.stateDir!, 'k3s', 'kubernetes.json'), 'utf8'))).toMatchObject({
        workloads: [],
        nodes: [{ name: 'node-7' }],
        pods: []
      })
      await until('k3s output in our log', () => lines.find((l) => l.fields.component === 'k3s' && l.msg.includes('Starting k3s server')))
      expect(lines.find((l) => l.fields.component === 'k3s' && l.msg.includes('stand-in: no containers'))?.level).toBe('warn')
    } finally {
      rt.stop()
    }
  })

  it('restarts K3s after a crash, with backoff, and is ready again', async () => {
    const { rt, dataDir, lines } = runtime('crash')
    await rt.start()
    try {
      await until('ready', () => rt.processStatus()?.state === 'ready')
      const firstPid = rt.processStatus()!.pid!
      // Every state the runtime reports from the crash on.
      const seen: Array<{ state: string; pid?: number }> = []
      rt.on('change', () => {
        const p = rt.processStatus()
        if (p != null) seen.push({ state: p.state, ...(p.pid != null ? { pid: p.pid } : {}) })
      })
      await crashViaApi(dataDir, 3)
      await until('backoff', () => rt.processStatus()?.state === 'backoff')
      // The first status without a process is `not-ready`, set at the exit itself (not `ready` until the backoff is decided).
      expect(seen.find((x) => x.pid == null)).toEqual({ state: 'not-ready' })
      expect(seen.filter((x) => x.state === 'ready' && x.pid == null)).toEqual([])
      expect(rt.processStatus()!.lastExit).toBe('exit code 3')
      expect(rt.capability().availability).toBe(Availability.DEGRADED)
      await until('ready again', () => rt.processStatus()?.state === 'ready' && rt.processStatus()!.pid !== firstPid)
      expect(rt.processStatus()!.restarts).toBe(1)
      expect(starts(dataDir)).toHaveLength(2)
      expect(
        lines.some((l) => l.level === 'warn' && l.msg.includes('restarting after backoff') && typeof l.fields.delayMs === 'number')
      ).toBe(true)
    } finally {
      rt.stop()
    }
  })

  it('gives up when the restart budget is spent and reports the runtime unavailable, saying why', async () => {
    const { rt, dataDir } = runtime(
      'budget',
      {},
      { FAKE_K3S_CRASH_AFTER_MS: '150' },
      { restartBudget: { restarts: 2, windowMs: 60_000 }, restartBackoff: { initialMs: 50, maxMs: 100 } }
    )
    await rt.start()
    try {
      await until('failed', () => rt.processStatus()?.state === 'failed', 20_000)
      expect(rt.capability().availability).toBe(Availability.UNAVAILABLE)
      expect(rt.capability().reason).toMatch(
        /exited 3 times within 60 s \(last: exit code 7\); restart budget spent; last output: .*level=error msg="simulated crash"/
      )
      expect(rt.health()).toMatchObject({ name: 'k3s-runtime', state: 3 /* UNHEALTHY */ })
      await new Promise((r) => setTimeout(r, 600))
      expect(starts(dataDir)).toHaveLength(3) // first start + 2 restarts, then nothing
      // The same config again (a heartbeat, a reconnect) does not start it; a restart command does.
      expect(await rt.reconfigure(K3sConfig.fromPartial({ ...runtime('budget').k3s }))).toEqual([])
      expect(starts(dataDir)).toHaveLength(3)
      // The runbook's step (docs/RECOVERY.md, "K3s restart budget spent"): the manager's restart
      // command for k3s-runtime grants a fresh budget — one start and two restarts more, then failed again.
      await rt.restart('restart command for k3s-runtime')
      await until('failed again on a fresh budget', () => starts(dataDir).length === 6 && rt.processStatus()?.state === 'failed', 20_000)
      expect(rt.capability().reason).toMatch(/exited 3 times within 60 s .*restart budget spent/)
    } finally {
      rt.stop()
    }
  })

  it('leaves K3s running when the agent stops; the next agent adopts it without a restart', async () => {
    const first = runtime('adopt')
    await first.rt.start()
    await until('ready', () => first.rt.processStatus()?.state === 'ready')
    const pid = first.rt.processStatus()!.pid!
    first.rt.stop()
    await new Promise((r) => setTimeout(r, 500))
    expect(alive(pid)).toBe(true)

    const second = runtime('adopt')
    await second.rt.start()
    try {
      expect(second.rt.processStatus()).toMatchObject({ pid, adopted: true })
      await until('ready', () => second.rt.processStatus()?.state === 'ready')
      expect(starts(second.dataDir)).toHaveLength(1)
      // An adopted K3s that dies is noticed (not our child: /proc is polled) and restarted.
      process.kill(pid, 'SIGKILL')
      // A new process, ready: between the exit and the restart the status keeps its last state without a pid.
      await until('restarted', () => {
        const s = second.rt.processStatus()
        return s?.state === 'ready' && s.pid != null && s.pid !== pid
      })
      expect(starts(second.dataDir)).toHaveLength(2)
    } finally {
      second.rt.stop()
    }
  })

  it('finds its K3s by command line when its state file is lost, and never starts a second one', async () => {
    const first = runtime('lost-state')
    await first.rt.start()
    await until('ready', () => first.rt.processStatus()?.state === 'ready')
    const pid = first.rt.processStatus()!.pid!
    first.rt.stop()
    for (const f of ['supervisor.state', 'supervisor.state.prev']) rmSync(join(first.init.stateDir!, 'k3s', f), { force: true })

    const second = runtime('lost-state')
    await second.rt.start()
    try {
      // Adopted, but what it was started with is unknown without the state file:
      // the planner restarts it exactly once (pods survive a K3s restart).
      await until('ready after one restart', () => second.rt.processStatus()?.state === 'ready' && second.rt.processStatus()!.pid !== pid)
      expect(alive(pid)).toBe(false)
      expect(
        second.lines.some((l) => l.msg === 'k3s state' && String(l.fields.reason).startsWith(`adopted k3s already running (pid ${pid})`))
      ).toBe(true)
      const list = starts(second.dataDir)
      expect(list).toHaveLength(2)
      expect(list.map((s) => s.pid).filter(alive)).toEqual([second.rt.processStatus()!.pid])
    } finally {
      second.rt.stop()
    }
  })

  it('restarts exactly once on a config change, never without one', async () => {
    const { rt, dataDir, k3s, init } = runtime('reconfigure')
    await rt.start()
    try {
      await until('ready', () => rt.processStatus()?.state === 'ready')
      const pid = rt.processStatus()!.pid!
      expect(await rt.reconfigure(K3sConfig.fromPartial({ ...k3s }))).toEqual([])
      expect(starts(dataDir)).toHaveLength(1)

      const steps = await rt.reconfigure(K3sConfig.fromPartial({ ...k3s, nodeLabels: { zone: 'b' } }))
      expect(steps.map((s) => s.type)).toEqual(['write-config', 'restart'])
      await until('ready after restart', () => rt.processStatus()?.state === 'ready' && rt.processStatus()!.pid !== pid)
      expect(alive(pid)).toBe(false)
      expect(rt.processStatus()!.lastExit).toBe('exit code 0') // SIGTERM, graceful
      expect(starts(dataDir)).toHaveLength(2)
      expect(starts(dataDir)[1]!.config['node-label']).toEqual(['zone=b'])
      expect(readFileSync(join(init.stateDir!, 'k3s', 'config.yaml'), 'utf8')).toContain('zone=b')
      expect(rt.processStatus()!.restarts).toBe(0) // a planned restart is not a crash
    } finally {
      rt.stop()
    }
  })

  it('kills a K3s that ignores SIGTERM after the stop timeout', async () => {
    const { rt, k3s } = runtime('stubborn', {}, { FAKE_K3S_IGNORE_SIGTERM: '1' }, { stopTimeoutMs: 300 })
    await rt.start()
    try {
      await until('ready', () => rt.processStatus()?.state === 'ready')
      const pid = rt.processStatus()!.pid!
      await rt.reconfigure(K3sConfig.fromPartial({ ...k3s, nodeLabels: { zone: 'c' } }))
      expect(alive(pid)).toBe(false)
      expect(rt.processStatus()!.lastExit).toBe('signal SIGKILL')
    } finally {
      rt.stop()
    }
  })

  it('disabling K3s in NodeConfig leaves it running, unsupervised', async () => {
    const { rt } = runtime('disable')
    await rt.start()
    try {
      await until('ready', () => rt.processStatus()?.state === 'ready')
      const pid = rt.processStatus()!.pid!
      const steps = await rt.reconfigure(K3sConfig.fromPartial({ enabled: false }))
      expect(steps.map((s) => s.type)).toEqual(['unmanage'])
      expect(rt.capability()).toMatchObject({
        availability: Availability.UNAVAILABLE,
        reason: 'disabled in NodeConfig (k3s.enabled is false)'
      })
      await new Promise((r) => setTimeout(r, 300))
      expect(alive(pid)).toBe(true)
    } finally {
      rt.stop()
    }
  })
})

/** POST /fake/crash with the client certificate the stand-in made (as K3s's own admin credentials). */
function crashViaApi(dataDir: string, code: number): Promise<void> {
  const tls = join(dataDir, 'server', 'tls')
  const kubeconfig = readFileSync(join(dataDir, '..', 'state', 'k3s', 'kubeconfig.yaml'), 'utf8')
  const port = Number(/server: https:\/\/127\.0\.0\.1:(\d+)/.exec(kubeconfig)![1])
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/fake/crash?code=${code}`,
        ca: readFileSync(join(tls, 'ca.crt')),
        cert: readFileSync(join(tls, 'client.crt')),
        key: readFileSync(join(tls, 'client.key'))
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve())
      }
    )
    req.on('error', reject)
    req.end()
  })
}
