import * as grpc from '@grpc/grpc-js'
import { create, createFileRegistry, fromBinary, toBinary, toJson, type FileRegistry } from '@bufbuild/protobuf'
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt'
import { execFile, execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { Phase, StatusReport, silentLogger } from '@mycelium/core-interfaces'
import { StatusServer, reflectionProtosDir } from '../src/status-server.js'
import { decodeFiles as decode, reflectionClient } from './helpers/reflection-client.js'

/**
 * Server reflection as stock clients use it: grpcurl builds a strict
 * descriptor pool from what file_containing_symbol returns, so every file
 * must come under its real name with its imports, and names must be the
 * contract's. Here: a reflection client (proto-loader stubs) asks, the
 * answers go into a strict @bufbuild/protobuf registry and are compared with
 * what the reference compiler (buf) makes of the same files, a method is
 * called through the reflected descriptors only — and an independent
 * implementation (Python grpcio + the C++ descriptor pool) does the same.
 */
const PROTOS = resolve(__dirname, '../../../protos')
const REFLECTION_PROTOS = reflectionProtosDir()

/**
 * A strict pool, as grpcurl builds one: files added one by one, each only
 * after the files it imports (all from the answer); a missing import throws.
 */
function strictRegistry(files: FileDescriptorProto[]): FileRegistry {
  const byName = new Map(files.map((f) => [f.name, f]))
  const ordered: FileDescriptorProto[] = []
  const add = (name: string): void => {
    const file = byName.get(name)
    if (file == null) throw new Error(`the answer lacks ${name}`)
    if (ordered.includes(file)) return
    for (const dep of file.dependency) add(dep)
    ordered.push(file)
  }
  add(files[0]!.name)
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }))
}

describe('server reflection on the status server', () => {
  let dir: string
  let server: StatusServer
  let socket: string
  const report = StatusReport.fromPartial({
    phase: Phase.MANAGED,
    reason: 'handed off',
    phaseSince: new Date('2026-01-02T03:04:05Z'),
    identity: { networkId: 'net1', nodeId: 'edge-7', spiffeId: 'spiffe://net1/node/edge-7' }
  })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-reflection-'))
    socket = join(dir, 'status.sock')
    server = new StatusServer(
      { status: () => report, onChange: () => () => undefined },
      { socketPath: socket, listenAddress: '' },
      silentLogger()
    )
    await server.start()
  })

  afterAll(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lists every served service', async () => {
    const client = reflectionClient(`unix://${socket}`)
    const res = await client.ask({ listServices: '*' })
    client.close()
    expect(res.listServicesResponse!.service.map((s) => s.name).sort()).toEqual(
      [
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
        'mycelium.core.v1.NodeStatus'
      ].sort()
    )
  })

  it('answers file_containing_symbol with real file names and imports that load into a strict pool', async () => {
    const client = reflectionClient(`unix://${socket}`)
    const files = decode(await client.ask({ fileContainingSymbol: 'mycelium.core.v1.NodeStatus' }))
    client.close()
    expect(files[0]!.name).toBe('mycelium/core/v1/node_status.proto')
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(['mycelium/core/v1/common.proto', 'google/protobuf/timestamp.proto', 'google/protobuf/duration.proto'])
    )
    expect(files[0]!.dependency).toEqual(expect.arrayContaining(['google/protobuf/timestamp.proto', 'mycelium/core/v1/common.proto']))
    const registry = strictRegistry(files)
    const report = registry.getMessage('mycelium.core.v1.StatusReport')!
    expect(report.fields.map((f) => f.name)).toContain('phase_since')
    expect(report.fields.find((f) => f.name === 'phase_since')?.jsonName).toBe('phaseSince')
  })

  it('answers file_by_filename for every real file name, and NOT_FOUND for invented ones', async () => {
    const client = reflectionClient(`unix://${socket}`)
    for (const name of ['mycelium/core/v1/node_status.proto', 'grpc/health/v1/health.proto', 'google/protobuf/timestamp.proto']) {
      const files = decode(await client.ask({ fileByFilename: name }))
      expect(files[0]?.name).toBe(name)
      strictRegistry(files)
    }
    const health = decode(await client.ask({ fileContainingSymbol: 'grpc.health.v1.Health' }))
    expect(health.map((f) => f.name)).toEqual(['grpc/health/v1/health.proto'])
    const missing = await client.ask({ fileByFilename: 'mycelium_core_v1.proto' })
    expect(missing.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND)
    client.close()
  })

  it('describes the contract files as the reference compiler does', async () => {
    const client = reflectionClient(`unix://${socket}`)
    const served = decode(await client.ask({ fileContainingSymbol: 'mycelium.core.v1.NodeStatus' }))
    client.close()
    const out = join(dir, 'buf.binpb')
    execFileSync(
      require.resolve('@bufbuild/buf/bin/buf'),
      ['build', PROTOS, '--path', join(PROTOS, 'mycelium/core/v1/node_status.proto'), '--as-file-descriptor-set', '-o', out],
      { stdio: 'pipe' }
    )
    const reference = fromBinary(FileDescriptorSetSchema, readFileSync(out)).file
    const normalize = (f: FileDescriptorProto): unknown => {
      const copy = create(FileDescriptorProtoSchema, f)
      copy.sourceCodeInfo = undefined
      copy.options = undefined
      copy.dependency = [...copy.dependency].sort()
      return toJson(FileDescriptorProtoSchema, copy)
    }
    const mine = served.filter((f) => f.name.startsWith('mycelium/'))
    expect(mine.length).toBeGreaterThan(1)
    for (const file of mine) {
      const ref = reference.find((r) => r.name === file.name)
      expect(ref).toBeDefined()
      expect(normalize(file)).toEqual(normalize(ref!))
    }
  })

  it('calls NodeStatus.GetStatus through the reflected descriptors only', async () => {
    const client = reflectionClient(`unix://${socket}`)
    const registry = strictRegistry(decode(await client.ask({ fileContainingSymbol: 'mycelium.core.v1.NodeStatus' })))
    client.close()
    const service = registry.getService('mycelium.core.v1.NodeStatus')!
    const method = service.methods.find((m) => m.name === 'GetStatus')!
    const generic = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure())
    const res = await new Promise<unknown>((resolvePromise, reject) =>
      generic.makeUnaryRequest(
        `/${service.typeName}/${method.name}`,
        (m: unknown) => Buffer.from(toBinary(method.input, m as never)),
        (b: Buffer) => fromBinary(method.output, b),
        create(method.input),
        (err, value) => (err != null ? reject(err) : resolvePromise(value))
      )
    )
    generic.close()
    const json = toJson(method.output, res as never, { useProtoFieldName: true, registry }) as Record<string, any>
    expect(json.status.phase).toBe('PHASE_MANAGED')
    expect(json.status.phase_since).toBe('2026-01-02T03:04:05Z')
    expect(json.status.identity.spiffe_id).toBe('spiffe://net1/node/edge-7')
  })
})

/** Debian's python3-grpcio with Debian's protoc (see ../../../shared/TESTBED.md and the dev-network interop test). */
const PYTHON = '/usr/bin/python3'
const PROTOC = '/usr/bin/protoc'
const GRPC_PLUGIN = '/usr/bin/grpc_python_plugin'
function pythonMissing(): string | undefined {
  for (const bin of [PYTHON, PROTOC, GRPC_PLUGIN]) if (!existsSync(bin)) return `${bin} not found`
  try {
    execFileSync(PYTHON, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' })
  } catch {
    return 'python3-grpcio is not installed'
  }
  return undefined
}
const why = pythonMissing()
if (why != null) process.stdout.write(`python reflection test skipped: ${why}\n`)
const maybe = why == null ? describe : describe.skip

maybe('server reflection with Python grpcio and the C++ descriptor pool', () => {
  let dir: string
  let server: StatusServer

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-reflection-py-'))
    server = new StatusServer(
      { status: () => StatusReport.fromPartial({ phase: Phase.FALLBACK, reason: 'no managers' }), onChange: () => () => undefined },
      { socketPath: join(dir, 'status.sock'), listenAddress: '127.0.0.1:0' },
      silentLogger()
    )
    await server.start()
    // Debian has no grpcio reflection module: generate its stubs from the same reflection.proto, under
    // another import path (a generated `grpc/` package would shadow grpcio's); the wire names are the proto's.
    mkdirSync(join(dir, 'src', 'pyreflection'), { recursive: true })
    copyFileSync(join(REFLECTION_PROTOS, 'grpc/reflection/v1alpha/reflection.proto'), join(dir, 'src', 'pyreflection', 'reflection.proto'))
    execFileSync(PROTOC, [
      `-I${join(dir, 'src')}`,
      `--python_out=${dir}`,
      `--grpc_out=${dir}`,
      `--plugin=protoc-gen-grpc=${GRPC_PLUGIN}`,
      join(dir, 'src', 'pyreflection', 'reflection.proto')
    ])
  }, 60_000)

  afterAll(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('lists the services, builds a strict pool from the descriptors and calls GetStatus by reflection', async () => {
    const address = server.addresses.find((a) => !a.startsWith('unix:'))!
    const { stdout } = await promisify(execFile)(PYTHON, [join(__dirname, 'interop', 'reflection_client.py'), dir, address], {
      encoding: 'utf8',
      timeout: 60_000
    })
    const seen = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>
    expect(seen.services).toEqual(expect.arrayContaining(['mycelium.core.v1.NodeStatus', 'grpc.health.v1.Health']))
    expect(seen.files[0]).toBe('mycelium/core/v1/node_status.proto')
    expect(seen.status.status.phase).toBe('PHASE_FALLBACK')
    expect(seen.status.status.reason).toBe('no managers')
    expect(seen.fields).toContain('phase_since')
  })
})
