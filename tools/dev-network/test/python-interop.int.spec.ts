import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { IdentityStore } from '@mycelium/basic-net'
import { startDevNetwork, type DevNetwork } from '../src/index.js'
import { enrolledNode } from './helpers/node.js'

/**
 * Interop with a second, independent gRPC implementation: Debian's
 * python3-grpcio (see ../shared/TESTBED.md), stubs generated now from the
 * same protos. Debian's python is called by its full path: the `python3` on
 * PATH may be another build that does not see Debian's packages. The stubs
 * come from Debian's protoc 3.21 and grpc_python_plugin: the protoc inside
 * python3-grpc-tools is 3.5, older than proto3 `optional`. `.ci/run`
 * installs python3-grpcio, python3-grpc-tools (for the well-known .proto
 * files), protobuf-compiler and protobuf-compiler-grpc.
 */
const PYTHON = '/usr/bin/python3'
const PROTOC = '/usr/bin/protoc'
const GRPC_PLUGIN = '/usr/bin/grpc_python_plugin'
const PROTOS = resolve(__dirname, '../../../protos')

function missing(): string | undefined {
  for (const bin of [PYTHON, PROTOC, GRPC_PLUGIN]) {
    if (!existsSync(bin)) return `${bin} not found (apt-get install -y python3-grpcio protobuf-compiler protobuf-compiler-grpc)`
  }
  try {
    execFileSync(PYTHON, ['-c', 'import grpc, grpc_tools'], { stdio: 'ignore' })
  } catch {
    return 'python3-grpcio / python3-grpc-tools are not installed'
  }
  return undefined
}

const why = missing()
if (why != null) process.stdout.write(`python interop test skipped: ${why}\n`)
const maybe = why == null ? describe : describe.skip

maybe('interop: Python grpcio calls the dev managers over mTLS', () => {
  let net: DevNetwork
  let dir: string
  let node: IdentityStore

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dev-net-py-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
    node = (await enrolledNode(net, 'py-node', dir)).store
    // Every v1 contract file: the one the client uses import others (a list by hand fell behind each new file).
    const protos = readdirSync(join(PROTOS, 'mycelium/core/v1'))
      .filter((f) => f.endsWith('.proto'))
      .map((f) => join(PROTOS, 'mycelium/core/v1', f))
    // The well-known types (google/protobuf/*.proto) ship inside python3-grpc-tools.
    const wkt = execFileSync(PYTHON, ['-c', 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'], {
      encoding: 'utf8'
    }).trim()
    execFileSync(PROTOC, [
      `-I${PROTOS}`,
      `-I${wkt}`,
      `--python_out=${dir}`,
      `--grpc_out=${dir}`,
      `--plugin=protoc-gen-grpc=${GRPC_PLUGIN}`,
      ...protos
    ])
  }, 60_000)

  afterAll(async () => {
    node?.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('registers, commits the handoff, heartbeats, lists spores, and sees the same refusals', async () => {
    // Asynchronously: the managers answer from this very process.
    const { stdout: out } = await promisify(execFile)(
      PYTHON,
      [
        join(__dirname, 'interop', 'python_client.py'),
        dir,
        JSON.stringify({
          networkId: 'net1',
          nodeId: 'py-node',
          ca: join(dir, 'py-node-ca.crt'),
          cert: join(dir, 'py-node.crt'),
          key: join(dir, 'py-node.key'),
          ...net.endpoints
        })
      ],
      { encoding: 'utf8', timeout: 60_000 }
    )
    const seen = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>
    expect(seen).toMatchObject({
      contractVersion: 1,
      heartbeatIntervalMs: 500,
      handoff: 'HANDOFF_OUTCOME_CONFIRMED',
      acks: [1, 2, 3],
      leaseRevoked: false,
      unsupportedVersion: 'FAILED_PRECONDITION',
      spores: ['bootstrap', 'service/network-manager', 'service/spore-manager'],
      badToken: 'UNAUTHENTICATED'
    })
    expect(seen.badTokenDetails).toContain('not a join token')
    expect(net.networkManager.nodes.get('py-node')?.managed).toBe(true)
    expect(net.networkManager.nodes.get('py-node')?.capabilities?.agentVersion).toBe('python-interop')
  })
})
