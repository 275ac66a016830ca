import * as grpc from '@grpc/grpc-js'
import { existsSync } from 'node:fs'
import { chmod, mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { loadSync } from '@grpc/proto-loader'
import { ReflectionService } from '@grpc/reflection'
import { HealthImplementation } from 'grpc-health-check'
import { NodeStatusService, type Logger, type NodeStatusServer, type Startable, type StatusReport } from '@mycelium/core-interfaces'

/** Where the v1 .proto files are at run time (copied into dist/protos by the build). */
export function protosDir(): string {
  const candidates = [join(__dirname, 'protos'), join(__dirname, '..', '..', '..', 'protos')]
  const found = candidates.find((d) => existsSync(join(d, 'mycelium', 'core', 'v1', 'node_status.proto')))
  if (found == null) throw new Error(`v1 protos not found (looked in ${candidates.join(', ')})`)
  return found
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

/**
 * The read-only NodeStatus service (GetStatus, WatchStatus) with the standard
 * grpc.health.v1 service and server reflection, on a unix socket (its
 * directory mode 0700) and/or a localhost port. Local only: no TLS.
 */
export class StatusServer implements Startable {
  private server?: grpc.Server
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
    new HealthImplementation({ '': 'SERVING', 'mycelium.core.v1.NodeStatus': 'SERVING' }).addToServer(server)
    const definition = loadSync(['mycelium/core/v1/node_status.proto'], { includeDirs: [protosDir()] })
    new ReflectionService(definition).addToServer(server)
    const bind = (address: string): Promise<number> =>
      new Promise((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err != null ? reject(err) : resolve(port))))
    try {
      if (this.init.socketPath !== '') {
        await mkdir(dirname(this.init.socketPath), { recursive: true, mode: 0o700 })
        await chmod(dirname(this.init.socketPath), 0o700)
        await rm(this.init.socketPath, { force: true }) // a stale socket from a crash
        await bind(`unix://${this.init.socketPath}`)
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
    if (this.init.socketPath !== '') await rm(this.init.socketPath, { force: true })
  }
}
