import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Availability, K3sConfig, K3sRole } from '@mycelium/core-interfaces'
import { createK3sRuntime, k3sConfigYaml, planK3s, renderK3s, validateK3sConfig, type RenderedK3s } from '../src/index.js'

const base = (over: Partial<K3sConfig> = {}): RenderedK3s =>
  renderK3s(K3sConfig.fromPartial({ enabled: true, role: K3sRole.SERVER, ...over }), 'node-1', '/usr/local/bin/k3s')
const plan = (applied: RenderedK3s | undefined, running: boolean, desired: RenderedK3s | undefined) =>
  planK3s(applied != null ? { applied, running } : { running }, desired, k3sConfigYaml).map((s) => [s.type, 'reason' in s ? s.reason : ''])

describe('renderK3s', () => {
  it('strips a server down by default and keeps server-only keys off agents', () => {
    const server = base()
    expect(server.config).toMatchObject({
      'node-name': 'node-1',
      disable: ['traefik', 'servicelb', 'metrics-server', 'local-storage'],
      'disable-helm-controller': true,
      'disable-cloud-controller': true,
      'write-kubeconfig-mode': '0600'
    })
    const agent = base({
      role: K3sRole.AGENT,
      serverUrl: 'https://10.0.0.1:6443',
      tokenFile: '/etc/k3s/token',
      secretsEncryption: true,
      flannelBackend: 'none'
    })
    expect(agent.role).toBe('agent')
    expect(agent.config).toEqual({ 'node-name': 'node-1', server: 'https://10.0.0.1:6443', 'token-file': '/etc/k3s/token' })
  })

  it('keeps what is asked for, and maps custom CNI and security settings', () => {
    const r = base({
      enableComponents: ['traefik', 'helm-controller'],
      flannelBackend: 'none',
      secretsEncryption: true,
      protectKernelDefaults: true,
      nodeLabels: { zone: 'a', tier: 'edge' }
    })
    expect(r.config.disable).toEqual(['servicelb', 'metrics-server', 'local-storage'])
    expect(r.config['disable-helm-controller']).toBeUndefined()
    expect(r.config).toMatchObject({
      'flannel-backend': 'none',
      'disable-network-policy': true,
      'secrets-encryption': true,
      'protect-kernel-defaults': true,
      'node-label': ['tier=edge', 'zone=a']
    })
    expect(k3sConfigYaml(r)).toContain('flannel-backend: none')
    const cni = base({ flannelBackend: 'none', cniConfDir: '/etc/cni/net.d', cniBinDir: '/opt/cni/bin' })
    expect(cni.config['kubelet-arg']).toEqual(['cni-conf-dir=/etc/cni/net.d', 'cni-bin-dir=/opt/cni/bin'])
    expect(
      renderK3s(K3sConfig.fromPartial({ enabled: true }), 'n', '/k3s', { kubeconfig: '/var/lib/mycelium/k3s/kubeconfig.yaml' }).config[
        'write-kubeconfig'
      ]
    ).toBe('/var/lib/mycelium/k3s/kubeconfig.yaml')
  })
})

describe('validateK3sConfig', () => {
  const v = (over: Partial<K3sConfig>) => () => validateK3sConfig(K3sConfig.fromPartial({ enabled: true, ...over }), 'node.yaml k3s')
  it('accepts the defaults and a complete agent', () => {
    expect(v({})).not.toThrow()
    expect(
      v({
        role: K3sRole.AGENT,
        serverUrl: 'https://k3s.lan:6443',
        tokenFile: '/etc/k3s/token',
        nodeLabels: { 'topology.kubernetes.io/zone': 'a-1' }
      })
    ).not.toThrow()
  })
  it('checks nothing while K3s is disabled', () => {
    expect(() => validateK3sConfig(K3sConfig.fromPartial({ enabled: false, flannelBackend: 'bogus' }), 'k3s')).not.toThrow()
  })
  it.each([
    [{ role: K3sRole.AGENT, serverUrl: 'https://s:6443' }, 'node.yaml k3s.tokenFile: is required when role is agent'],
    [{ serverUrl: 'not a url' }, 'node.yaml k3s.serverUrl: "not a url" is not a URL'],
    [{ nodeLabels: { zone: 'has space' } }, 'node.yaml k3s.nodeLabels: label "zone": value "has space"'],
    [{ nodeLabels: { 'Bad_Prefix/zone': 'a' } }, 'node.yaml k3s.nodeLabels: label key "Bad_Prefix/zone": prefix must be a DNS subdomain'],
    [{ criSocket: 'run/k3s.sock' }, 'node.yaml k3s.criSocket: must be an absolute path']
  ])('rejects %j naming the key', (over, message) => {
    expect(v(over as Partial<K3sConfig>)).toThrow(message)
  })
  it('a runtime given an invalid config reports it unavailable, and refuses it as a reconfiguration', async () => {
    const rt = createK3sRuntime({}, { k3s: K3sConfig.fromPartial({ enabled: true, flannelBackend: 'bogus' }) })
    await rt.start()
    try {
      expect(rt.capability()).toMatchObject({
        availability: Availability.UNAVAILABLE,
        reason: expect.stringContaining('invalid config: NodeConfig.k3s.flannelBackend: "bogus"')
      })
      await expect(rt.reconfigure(K3sConfig.fromPartial({ enabled: true, dataDir: 'relative' }))).rejects.toThrow(
        'NodeConfig.k3s.dataDir: must be an absolute path'
      )
    } finally {
      rt.stop()
    }
  })
})

describe('planK3s', () => {
  it('first start: writes the config and starts', () => {
    expect(plan(undefined, false, base())).toEqual([
      ['write-config', ''],
      ['start', 'k3s not running']
    ])
  })
  it('no change while running: nothing at all', () => {
    expect(plan(base(), true, base())).toEqual([])
  })
  it.each([
    ['a label', { nodeLabels: { zone: 'b' } }, 'node-label'],
    ['the role', { role: K3sRole.AGENT, serverUrl: 'https://s:6443' }, 'role server → agent'],
    ['an enabled component', { enableComponents: ['traefik'] }, 'disable'],
    ['the flannel backend', { flannelBackend: 'wireguard-native' }, 'flannel-backend'],
    ['extra args', { extraArgs: ['--kubelet-arg=max-pods=50'] }, 'extra args'],
    ['secrets encryption', { secretsEncryption: true }, 'secrets-encryption'],
    ['protect-kernel-defaults', { protectKernelDefaults: true }, 'protect-kernel-defaults'],
    ['the custom CNI dirs', { flannelBackend: 'none', cniConfDir: '/etc/cni/net.d' }, 'kubelet-arg'],
    ['the data dir', { dataDir: '/data/k3s' }, 'data-dir'],
    ['the binary', {}, 'binary']
  ])('a change of %s: rewrite and exactly one restart, saying what changed', (_what, over, changed) => {
    const desired = base(over as Partial<K3sConfig>)
    if (changed === 'binary') desired.binary = '/opt/k3s/bin/k3s'
    const steps = plan(base(), true, desired)
    expect(steps.map(([t]) => t)).toEqual(['write-config', 'restart'])
    expect(steps[1]![1]).toContain(changed)
  })
  it('crashed with the same config: start again without rewriting', () => {
    expect(plan(base(), false, base())).toEqual([['start', 'k3s not running (same config)']])
  })
  it('disabled while running: left running, only unmanaged (never killed)', () => {
    expect(plan(base(), true, undefined)).toEqual([['unmanage', 'k3s disabled in NodeConfig: left running, no longer supervised']])
    expect(plan(base(), false, undefined)).toEqual([])
  })
})

describe('K3sRuntime capability (no K3s on this machine is a normal state)', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'k3s-bin-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('is unavailable when disabled, or when no binary is installed, saying why', async () => {
    const disabled = createK3sRuntime({}, { k3s: undefined })
    await disabled.start()
    expect(disabled.capability()).toMatchObject({
      availability: Availability.UNAVAILABLE,
      reason: 'disabled in NodeConfig (k3s.enabled is false)'
    })
    const missing = createK3sRuntime({}, { k3s: K3sConfig.fromPartial({ enabled: true }), path: dir })
    await missing.start()
    expect(missing.capability()).toMatchObject({ availability: Availability.UNAVAILABLE, reason: 'no k3s binary on PATH' })
  })

  it('is available with the version a real executable reports (a stand-in at the process boundary)', async () => {
    const k3s = join(dir, 'k3s')
    writeFileSync(k3s, '#!/bin/sh\necho "k3s version v1.30.4+k3s1 (98262b5d)"\necho "go version go1.22.5"\n')
    chmodSync(k3s, 0o755)
    // No state dir: the version is checked, nothing is started.
    const runtime = createK3sRuntime(
      {},
      { k3s: K3sConfig.fromPartial({ enabled: true, criSocket: join(dir, 'none.sock') }), path: `/nonexistent:${dir}` }
    )
    await runtime.start()
    try {
      expect(runtime.capability()).toEqual({ name: 'k3s', availability: Availability.AVAILABLE, version: 'v1.30.4+k3s1', reason: '' })
    } finally {
      runtime.stop()
    }
  })

  it('is unavailable, quoting the binary, when --version fails', async () => {
    const k3s = join(dir, 'k3s')
    writeFileSync(k3s, '#!/bin/sh\necho "segfault" >&2\nexit 139\n')
    chmodSync(k3s, 0o755)
    const runtime = createK3sRuntime(
      {},
      { k3s: K3sConfig.fromPartial({ enabled: true, binaryPath: k3s, criSocket: join(dir, 'none.sock') }) }
    )
    await runtime.start()
    try {
      expect(runtime.capability()).toMatchObject({
        availability: Availability.UNAVAILABLE,
        reason: expect.stringContaining(`${k3s} --version failed`)
      })
    } finally {
      runtime.stop()
    }
  })
})
