import * as grpc from '@grpc/grpc-js'
import { ComponentService, type ComponentServer } from '@mycelium/core-interfaces'

/** What a component does; the server speaks the contract for it. */
export interface ComponentHandlers {
  name: string
  version: string
  /** Contract versions spoken. @default [1, 1] */
  contract?: [min: number, max: number]
  /** Called on Hello with the assignment's parameters (start the work here). */
  begin: (parameters: Record<string, string>) => Promise<void> | void
  health: () => { healthy: boolean; reason?: string; workCount: number }
  /** Finish cleanly (flush, close); the process exits after it. */
  end: (reason: string) => Promise<void> | void
}

/** `--socket <path>` (or MYCELIUM_COMPONENT_SOCKET): where the agent expects the contract. */
export function socketArg(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): string {
  const i = argv.indexOf('--socket')
  const socket = i >= 0 ? argv[i + 1] : env.MYCELIUM_COMPONENT_SOCKET
  if (socket == null || socket === '') throw new Error('no --socket <path> given (the agent starts components with one)')
  return socket
}

/** A line on stdout: the agent follows the component's output into its own log. */
export function say(text: string): void {
  process.stdout.write(`${text}\n`)
}

/**
 * Serves the component contract (component.proto) on the unix socket and
 * runs the component until Stop, SIGTERM or SIGINT.
 */
export async function serveComponent(h: ComponentHandlers): Promise<void> {
  const socket = socketArg()
  const server = new grpc.Server()
  let begun = false
  let ending: Promise<void> | undefined
  const finish = (reason: string): Promise<void> => {
    ending ??= (async () => {
      say(`stopping: ${reason}`)
      await h.end(reason)
      server.forceShutdown()
      process.exit(0)
    })()
    return ending
  }
  const impl: ComponentServer = {
    hello: (call, cb) => {
      const [min, max] = h.contract ?? [1, 1]
      void (async () => {
        if (!begun) {
          begun = true
          await h.begin(call.request.parameters)
        }
        cb(null, { contractVersionMin: min, contractVersionMax: max, name: h.name, version: h.version })
      })().catch((err: Error) => cb({ code: grpc.status.FAILED_PRECONDITION, details: err.message }))
    },
    health: (_call, cb) => {
      const r = h.health()
      cb(null, { healthy: r.healthy, reason: r.reason ?? '', workCount: r.workCount })
    },
    stop: (call, cb) => {
      cb(null, {})
      setImmediate(() => void finish(call.request.reason || 'Stop'))
    }
  }
  server.addService(ComponentService, impl)
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err != null ? reject(err) : resolve()))
  )
  process.on('SIGTERM', () => void finish('SIGTERM'))
  process.on('SIGINT', () => void finish('SIGINT'))
  say(`${h.name} ${h.version} listening on ${socket}`)
}
