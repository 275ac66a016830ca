import { execFile, execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { cri } from '@mycelium/k3s-runtime'
import { callUnary } from '@mycelium/core-utils'
import { until } from './until.js'

/**
 * A real containerd (Debian's, with runc) started for one test suite: its
 * own root, state and socket under a temp dir, the CRI plugin on, and a
 * busybox-static image plus a pause image imported into namespace k8s.io.
 * See ../shared/TESTBED.md for why each setting is what it is.
 */
export interface TestContainerd {
  dir: string
  /** CRI / containerd API socket. */
  socket: string
  pid: number
  /** Image reference of the busybox image (has /bin/sh, /bin/sleep). */
  busyboxImage: string
  /** Stops containerd by PID and removes everything it created. */
  stop(): Promise<void>
}

export const PAUSE_IMAGE = 'mycelium.test/pause:1'
export const BUSYBOX_IMAGE = 'mycelium.test/busybox:1'

/** Why containerd cannot run here, or undefined when it can (root + Debian's containerd, runc, busybox-static). */
export function containerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root'
  for (const bin of ['containerd', 'ctr', 'runc', 'containerd-shim-runc-v2']) {
    try {
      execFileSync('which', [bin], { stdio: 'ignore' })
    } catch {
      return `${bin} not installed (apt-get install containerd runc)`
    }
  }
  if (!existsSync('/bin/busybox')) return '/bin/busybox not installed (apt-get install busybox-static)'
  return undefined
}

function configToml(dir: string, socket: string): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "${socket}"

[ttrpc]
  address = "${socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/conf"
`
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/**
 * An OCI image-layout tar holding one uncompressed layer with /bin/busybox
 * (and sh/sleep links), tagged `name`, with `entrypoint` as its command.
 */
export function buildBusyboxImage(work: string, name: string, cmd: string[]): string {
  const rootfs = join(work, `rootfs-${sha256(Buffer.from(name)).slice(0, 8)}`)
  mkdirSync(join(rootfs, 'bin'), { recursive: true })
  for (const d of ['proc', 'sys', 'dev', 'etc', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true })
  if (!existsSync(join(rootfs, 'bin/busybox'))) copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'))
  for (const link of ['sh', 'sleep', 'cat', 'echo'])
    if (!existsSync(join(rootfs, 'bin', link))) symlinkSync('busybox', join(rootfs, 'bin', link))
  const layerTar = join(work, `${name.replace(/[^a-z0-9]/gi, '_')}-layer.tar`)
  // Fixed owner and mtime so the same input gives the same digest.
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTar, '.'])
  const layer = readFileSync(layerTar)
  const layerDigest = sha256(layer)
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Cmd: cmd, Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] }
    })
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }]
    })
  )
  const layout = join(work, `${name.replace(/[^a-z0-9]/gi, '_')}-layout`)
  mkdirSync(join(layout, 'blobs/sha256'), { recursive: true })
  writeFileSync(join(layout, 'blobs/sha256', layerDigest), layer)
  writeFileSync(join(layout, 'blobs/sha256', sha256(config)), config)
  writeFileSync(join(layout, 'blobs/sha256', sha256(manifest)), manifest)
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${sha256(manifest)}`,
          size: manifest.length,
          annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() }
        }
      ]
    })
  )
  const archive = `${layout}.tar`
  execFileSync('tar', ['-C', layout, '-cf', archive, '.'])
  return archive
}

/** Processes whose command line mentions `needle` (containerd-shim-runc-v2 carries the socket path). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      if (cmdline.includes(needle)) out.push(Number(entry))
    } catch {
      // exited meanwhile
    }
  }
  return out
}

function mountsUnder(prefixes: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m != null && prefixes.some((p) => m.startsWith(p)))
    .sort((a, b) => b.length - a.length)
}

export async function startContainerd(): Promise<TestContainerd> {
  const dir = mkdtempSync(join(tmpdir(), 'mycelium-ctrd-'))
  const socket = join(dir, 'containerd.sock')
  for (const d of ['root', 'state', 'opt', 'cni/bin', 'cni/conf', 'images']) mkdirSync(join(dir, d), { recursive: true })
  writeFileSync(join(dir, 'config.toml'), configToml(dir, socket))
  const log = openSync(join(dir, 'containerd.log'), 'a')
  const child = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', log, log], detached: true })
  child.unref()
  const pid = child.pid!
  const ctr = (args: string[]) => promisify(execFile)('ctr', ['-a', socket, '-n', 'k8s.io', ...args], { timeout: 30_000 })
  const stop = async (): Promise<void> => {
    // CRI sandboxes first, so containerd itself stops their shims and mounts.
    try {
      const { stdout } = await ctr(['tasks', 'ls', '-q'])
      for (const id of stdout.split('\n').filter(Boolean)) await ctr(['tasks', 'kill', '-s', 'SIGKILL', id]).catch(() => undefined)
    } catch {
      // containerd already gone
    }
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // already gone
    }
    await until(
      'containerd to exit',
      async () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z',
      10_000
    ).catch(() => {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    })
    for (const shim of pidsMentioning(socket)) {
      try {
        process.kill(shim, 'SIGKILL')
      } catch {
        // gone
      }
    }
    for (const m of mountsUnder([
      dir,
      '/run/containerd/io.containerd.grpc.v1.cri/sandboxes/',
      '/run/containerd/io.containerd.runtime.v2.task/k8s.io/'
    ])) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' })
      } catch {
        // not ours or already gone
      }
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await until(
      'containerd socket',
      async () =>
        existsSync(socket) &&
        (await ctr(['version']).then(
          () => true,
          () => false
        )),
      15_000
    )
    await ctr(['images', 'import', buildBusyboxImage(join(dir, 'images'), PAUSE_IMAGE, ['/bin/sleep', '2147483647'])])
    await ctr(['images', 'import', buildBusyboxImage(join(dir, 'images'), BUSYBOX_IMAGE, ['/bin/sh'])])
  } catch (err) {
    const logText = existsSync(join(dir, 'containerd.log')) ? readFileSync(join(dir, 'containerd.log'), 'utf8').slice(-2000) : ''
    await stop()
    throw new Error(`containerd did not come up: ${(err as Error).message}\n${logText}`, { cause: err })
  }
  return { dir, socket, pid, busyboxImage: BUSYBOX_IMAGE, stop }
}

/** Runs a host-network pod with one `sleep` container, as the kubelet would through the CRI. */
export async function runSleepPod(
  raw: cri.RuntimeServiceClient,
  image: string,
  name: string,
  logDir: string
): Promise<{ podId: string; containerId: string }> {
  const signal = new AbortController().signal
  const sandboxConfig: cri.PodSandboxConfig = {
    metadata: { name, uid: `${name}-uid`, namespace: 'default', attempt: 0 },
    hostname: '', // host-network sandboxes must not set one
    logDirectory: logDir,
    labels: {},
    annotations: {},
    linux: {
      cgroupParent: '',
      securityContext: { namespaceOptions: { network: cri.NamespaceMode.NODE, pid: cri.NamespaceMode.POD, ipc: cri.NamespaceMode.POD } }
    }
  }
  const pod = await callUnary<cri.RunPodSandboxRequest, cri.RunPodSandboxResponse>(
    raw.runPodSandbox.bind(raw),
    { config: sandboxConfig, runtimeHandler: '' },
    signal,
    30_000
  )
  const created = await callUnary<cri.CreateContainerRequest, cri.CreateContainerResponse>(
    raw.createContainer.bind(raw),
    {
      podSandboxId: pod.podSandboxId,
      sandboxConfig,
      config: {
        metadata: { name: 'sleeper', attempt: 0 },
        image: { image, annotations: {} },
        command: ['/bin/sleep', '3600'],
        args: [],
        workingDir: '',
        envs: [],
        labels: { 'io.kubernetes.pod.namespace': 'default' },
        annotations: {},
        logPath: 'sleeper.log'
      }
    },
    signal,
    30_000
  )
  await callUnary<cri.StartContainerRequest, cri.StartContainerResponse>(
    raw.startContainer.bind(raw),
    { containerId: created.containerId },
    signal,
    30_000
  )
  return { podId: pod.podSandboxId, containerId: created.containerId }
}
