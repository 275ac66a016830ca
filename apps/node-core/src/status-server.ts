import * as grpc from '@grpc/grpc-js'
import { existsSync } from 'node:fs'
import { chmod, lstat, mkdir, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { addHealthService } from './grpc-health.js'
import {
  NotFoundError,
  UnavailableError,
  InvalidConfigError,
  NodeStatusService,
  type Logger,
  type NodeStatusServer,
  type Startable,
  type StatusReport
} from '@mycelium/core-interfaces'

/** Where the v1 .proto files are at run time (copied into dist/protos by the build). */
export function protosDir(): string {
  const candidates = [join(__dirname, 'protos'), join(__dirname, '..', '..', '..', 'protos')]
  const found = candidates.find((d) => existsSync(join(d, 'mycelium', 'core', 'v1', 'node_status.proto')))
  if (found == null) throw new NotFoundError(`v1 protos not found (looked in ${candidates.join(', ')})`)
  return found
}

/** What sits at a path, for errors. */
function describeKind(st: Awaited<ReturnType<typeof lstat>>): string {
  if (st.isFile()) return 'a regular file'
  if (st.isDirectory()) return 'a directory'
  if (st.isSymbolicLink()) return 'a symbolic link'
  if (st.isFIFO()) return 'a FIFO'
  return 'not a socket'
}

/** True when a process accepts connections on the unix socket (it is live, not stale). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/**
 * Checks the status socket path and, unless `dryRun`, makes it ready to
 * bind: creates its directory (0700) when missing — only a directory created
 * here is chmod-ed — and removes a *stale* socket left by a crash. Anything
 * else at the path (a regular file, a directory, a link, a socket a live
 * process answers on) is refused with InvalidConfigError naming
 * status.socketPath: the agent never deletes what it did not create.
 * `run` calls it with `dryRun` before anything is written.
 */
export async function prepareStatusSocket(path: string, options: { dryRun?: boolean } = {}): Promise<void> {
  const where = `status.socketPath ${path}`
  if (options.dryRun !== true) {
    const created = await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    // mkdir's mode is filtered by the umask; tighten only what was created here.
    if (created != null) await chmod(dirname(path), 0o700)
  }
  let st: Awaited<ReturnType<typeof lstat>>
  try {
    st = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new InvalidConfigError(`cannot inspect: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, where)
  }
  if (!st.isSocket())
    throw new InvalidConfigError(`exists and is ${describeKind(st)}; refusing to replace it (only a stale socket is removed)`, where)
  if (await socketAnswers(path))
    throw new InvalidConfigError('a running process answers on this socket (another agent?); refusing to take it over', where)
  if (options.dryRun !== true) await rm(path)
}

export interface StatusServerInit {
  /** Unix socket path ("" for none). */
  socketPath: string
  /** "127.0.0.1:port" ("" for none). */
  listenAddress: string
}

export interface StatusSource {
  status(): StatusReport
  /** Registers a change listener; returns its remover. */
  onChange(listener: () => void): () => void
}

type ReflectionMethod = grpc.MethodDefinition<unknown, unknown>
type LoadedReflection = Map<string, { method: ReflectionMethod; handler: grpc.handleBidiStreamingCall<unknown, unknown> }>

/** Every service the status server serves: what server reflection lists. */
export const STATUS_SERVICES = [
  'mycelium.core.v1.NodeStatus',
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection'
] as const

/** Where @grpc/reflection's .proto files are: beside the release bundle (vendor/), else in node_modules. */
export function reflectionProtosDir(): string {
  const candidates = [join(__dirname, 'vendor', '@grpc', 'reflection', 'build', 'proto')]
  try {
    candidates.push(join(dirname(createRequire(__filename).resolve('@grpc/reflection/package.json')), 'build', 'proto'))
  } catch {
    // not installed beside the code: only the vendored copy can serve
  }
  const found = candidates.find((d) => existsSync(join(d, 'grpc', 'reflection', 'v1', 'reflection.proto')))
  if (found == null) throw new NotFoundError(`grpc reflection protos not found (looked in ${candidates.join(', ')})`)
  return found
}

/**
 * Server reflection (grpc.reflection.v1 and v1alpha) whose implementation —
 * reflection.ts, with proto-descriptors.ts: protobufjs parsing the shipped
 * .proto files into one descriptor per real file, checked by a strict
 * @bufbuild/protobuf registry —
 * is loaded on the first reflection call, not at start. The service is
 * registered at start under its real paths, so a client sees no difference;
 * the proto directories are checked by the caller at start, so a missing one
 * is still found then.
 */
function addLazyReflection(server: grpc.Server, protos: string, reflectionProtos: string): void {
  let loaded: Promise<LoadedReflection> | undefined
  let ready: LoadedReflection | undefined
  const load = (): Promise<LoadedReflection> =>
    // grpc-health-check only for the path of its health.proto: importing it parses that file (proto-loader).
    (loaded ??= Promise.all([import('./reflection.js'), import('grpc-health-check')]).then(
      ([{ loadReflection }, { protoPath: healthProtoPath }]) => {
        const file = (dir: string, name: string): { name: string; path: string } => ({ name, path: join(dir, name) })
        return (ready = loadReflection({
          includeDirs: [protos],
          files: [
            file(protos, 'mycelium/core/v1/node_status.proto'),
            // grpc-health-check ships it as health/v1/health.proto; its import path everywhere else is grpc/health/v1/.
            { name: 'grpc/health/v1/health.proto', path: healthProtoPath },
            file(reflectionProtos, 'grpc/reflection/v1/reflection.proto'),
            file(reflectionProtos, 'grpc/reflection/v1alpha/reflection.proto')
          ],
          services: [...STATUS_SERVICES]
        }))
      }
    ))
  const real = (path: string): { method: ReflectionMethod; handler: grpc.handleBidiStreamingCall<unknown, unknown> } => {
    const found = ready?.get(path)
    // Unreachable: grpc-js decodes a request only once the handler reads the stream, which the real handler does after the load.
    if (found == null) throw new UnavailableError(`server reflection is still loading (${path})`)
    return found
  }
  for (const version of ['v1', 'v1alpha']) {
    const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`
    const method: ReflectionMethod = {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: (m) => real(path).method.requestSerialize(m),
      requestDeserialize: (b) => real(path).method.requestDeserialize(b),
      responseSerialize: (m) => real(path).method.responseSerialize(m),
      responseDeserialize: (b) => real(path).method.responseDeserialize(b)
    }
    server.addService(
      { ServerReflectionInfo: method },
      {
        ServerReflectionInfo: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
          load().then(
            () => real(path).handler(call),
            (err: unknown) => call.destroy(err as Error)
          )
        }
      }
    )
  }
}

/**
 * The read-only NodeStatus service (GetStatus, WatchStatus) with the standard
 * grpc.health.v1 service and server reflection, on a unix socket (a
 * directory it creates is mode 0700; see prepareStatusSocket) and/or a
 * localhost port. Local only: no TLS.
 */
export class StatusServer implements Startable {
  private server?: grpc.Server
  /** Set once this server bound the socket: only then does stop() remove it. */
  private ownsSocket = false
  readonly addresses: string[] = []

  constructor(
    private readonly source: StatusSource,
    private readonly init: StatusServerInit,
    private readonly log: Logger
  ) {}

  isStarted(): boolean {
    return this.server != null
  }

  async start(): Promise<void> {
    if (this.server != null) return
    if (this.init.socketPath === '' && this.init.listenAddress === '') return // status surfaces off
    const server = new grpc.Server()
    const handlers: NodeStatusServer = {
      getStatus: (_call, cb) => cb(null, { status: this.source.status() }),
      watchStatus: (call) => {
        const send = (): void => {
          call.write({ status: this.source.status() })
        }
        send()
        const off = this.source.onChange(send)
        const timer = setInterval(send, 5000)
        const done = (): void => {
          off()
          clearInterval(timer)
        }
        call.on('cancelled', done)
        call.on('error', done)
      }
    }
    server.addService(NodeStatusService, handlers)
    addHealthService(server, { '': 'SERVING', 'mycelium.core.v1.NodeStatus': 'SERVING' })
    addLazyReflection(server, protosDir(), reflectionProtosDir())
    const bind = (address: string): Promise<number> =>
      new Promise((resolve, reject) =>
        server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err != null ? reject(err) : resolve(port)))
      )
    try {
      if (this.init.socketPath !== '') {
        await prepareStatusSocket(this.init.socketPath)
        await bind(`unix://${this.init.socketPath}`)
        this.ownsSocket = true
        this.addresses.push(`unix://${this.init.socketPath}`)
      }
      if (this.init.listenAddress !== '') {
        const port = await bind(this.init.listenAddress)
        this.addresses.push(this.init.listenAddress.replace(/:0$/, `:${port}`))
      }
    } catch (err) {
      server.forceShutdown()
      this.addresses.length = 0
      throw err
    }
    this.server = server
    this.log.info('NodeStatus serving', { addresses: this.addresses })
  }

  async stop(): Promise<void> {
    this.server?.forceShutdown()
    this.server = undefined
    this.addresses.length = 0
    if (this.ownsSocket) {
      this.ownsSocket = false
      await rm(this.init.socketPath, { force: true })
    }
  }
}
