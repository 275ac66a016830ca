import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { Command, CommanderError } from 'commander'
import { startDevNetwork, type DevNetwork } from './dev-network.js'
import { CONTROL_FILE, parseFaultAction, sendControl, sendFault, startControlServer } from './control.js'
import {
  EMERGENCY_ACTION_NAMES,
  formatCommandEvent,
  formatNodeRows,
  parseCommandSpec,
  type CommandEvent,
  type CommandSpec,
  type NodeRow
} from './operator.js'
import { InvalidInputError } from '@mycelium/core-interfaces'

export interface CliIo {
  out(text: string): void
  err(text: string): void
  /** Resolves when the operator asks `up` to stop (SIGINT/SIGTERM in the bin). */
  untilStopped(): Promise<void>
}

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

const parseMs = (v: string): number => {
  const m = /^(\d+)(ms|s)?$/.exec(v.trim())
  if (m == null) throw new InvalidInputError(`"${v}" is not a duration like 500ms or 2s`, 'duration')
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1)
}

export function buildProgram(io: CliIo, onUp?: (net: DevNetwork) => void, setExit: (code: number) => void = () => undefined): Command {
  const program = new Command('dev-network')
    .description('Reference managers for a local Mycelium network: Network Manager, Command Channel, Spore Manager.')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .option('--debug', 'print the stack of an error')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 refused or failed — or a command that did not end SUCCEEDED (one `error:` line; --debug for the stack), 2 bad command line.'
    )

  program
    .command('up')
    .description('start the managers and keep them running; state persists in --dir')
    .requiredOption('--dir <dir>', 'state directory (CA, keys, tokens, nodes, sequences)')
    .option('--network <id>', 'network id (for a new state dir)', 'dev')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--heartbeat <duration>', 'heartbeat interval given to nodes', '1s')
    .action(async (opts: { dir: string; network: string; host: string; heartbeat: string }) => {
      const net = await startDevNetwork({
        dir: opts.dir,
        networkId: opts.network,
        host: opts.host,
        heartbeatIntervalMs: parseMs(opts.heartbeat)
      })
      const control = await startControlServer(net)
      const controlPort = (control.address() as AddressInfo).port
      const e = net.endpoints
      io.out(
        [
          `dev network "${net.networkId}" up (state in ${net.dir})`,
          `  network manager  ${e.networkManager}  (mTLS)`,
          `  enrolment        ${e.enrollment}  (TLS, join token)`,
          `  spore manager    ${e.sporeManager}  (mTLS)`,
          `  bootstrap file   ${net.bootstrapFile}`,
          `  join token       ${net.joinToken}`,
          `  control          http://127.0.0.1:${controlPort}  (bearer token in ${join(net.dir, CONTROL_FILE)})`,
          `nodes:  dev-network nodes --dir ${net.dir}`,
          `drive:  dev-network command --dir ${net.dir} --node <id> restart|reconfigure|update|emergency …`,
          `faults: dev-network fault --dir ${net.dir} <action> (see --help)`,
          ''
        ].join('\n')
      )
      onUp?.(net)
      await io.untilStopped()
      control.close()
      await net.stop()
      io.out('dev network stopped\n')
    })

  program
    .command('fault')
    .description(
      'change a running dev network: stop|start <manager>, kill-streams, delay <manager> <ms>, refuse <manager> <CODE|off>, refuse-handoff on|off, ignore-handoff on|off, rollback-spore <name>, republish, join-token, push-config <NodeConfig.json>, nodes'
    )
    .requiredOption('--dir <dir>', 'state directory of the running `up`')
    .argument('<action>', 'what to do')
    .argument('[args...]', 'its arguments')
    .action(async (action: string, args: string[], opts: { dir: string }) => {
      const raw: Record<string, unknown> = { action }
      if (['stop', 'start', 'delay', 'refuse'].includes(action)) raw.manager = args[0]
      if (action === 'delay') raw.ms = args[1] != null ? parseMs(args[1]) : undefined
      if (action === 'refuse') raw.code = args[1]
      if (action === 'refuse-handoff' || action === 'ignore-handoff') raw.on = args[0]
      if (action === 'rollback-spore') raw.name = args[0]
      if (action === 'push-config') {
        if (args[0] == null) throw new InvalidInputError('needs a NodeConfig JSON file', 'push-config')
        raw.config = JSON.parse(await readFile(args[0], 'utf8')) as unknown
      }
      io.out(`${await sendFault(opts.dir, parseFaultAction(raw))}\n`)
    })

  program
    .command('nodes')
    .description('list the nodes: enrolled, registered, lease, phase, last heartbeat, agent version, config version, components')
    .requiredOption('--dir <dir>', 'state directory of the running `up`')
    .option('--json', 'print JSON')
    .action(async (opts: { dir: string; json?: boolean }) => {
      const rows = JSON.parse(await sendFault(opts.dir, { action: 'node-list' })) as NodeRow[]
      io.out(opts.json === true ? `${JSON.stringify(rows, null, 2)}\n` : `${formatNodeRows(rows)}\n`)
    })

  /** Streams a command's progress; exit 1 unless it ends SUCCEEDED. */
  const drive = async (dir: string, node: string, spec: CommandSpec, timeout: string | undefined): Promise<void> => {
    let end: CommandEvent | undefined
    await sendControl(
      dir,
      { action: 'command', node, command: spec, ...(timeout != null ? { timeoutMs: parseMs(timeout) } : {}) },
      (line) => {
        const e = JSON.parse(line) as CommandEvent
        if (e.event === 'end') end = e
        io.out(`${formatCommandEvent(e)}\n`)
      }
    )
    if (end?.event !== 'end' || !end.final || end.state !== 'SUCCEEDED') setExit(EXIT_FAILED)
  }
  const readConfigFile = async (file: string): Promise<Record<string, unknown>> => {
    let parsed: unknown
    try {
      parsed = parseYaml(await readFile(file, 'utf8'))
    } catch (err) {
      throw new InvalidInputError(`cannot read a NodeConfig fragment: ${(err as Error).message}`, file)
    }
    if (typeof parsed !== 'object' || parsed == null || Array.isArray(parsed))
      throw new InvalidInputError('must hold a NodeConfig fragment (a YAML or JSON mapping, proto JSON field names)', file)
    return parsed as Record<string, unknown>
  }

  program
    .command('command')
    .description(
      `send one node a command and print its status updates until a final one: restart [component] | reconfigure <config.yaml> | update --version V --digest sha256:… --url U | emergency <${EMERGENCY_ACTION_NAMES.join('|')}> (signed with the network's operator key)`
    )
    .requiredOption('--dir <dir>', 'state directory of the running `up`')
    .requiredOption('--node <id>', 'the node')
    .argument('<kind>', 'restart, reconfigure, update or emergency')
    .argument('[args...]', 'its arguments')
    .option('--component <name>', 'update: the component (default: the agent)')
    .option('--version <v>', 'update: target version')
    .option('--digest <sha256:hex>', 'update: artifact digest')
    .option('--url <url>', 'update: artifact URL (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .option('--reason <text>', 'emergency: why (journaled on the node)')
    .option('--confirm-window <duration>', 'reconfigure: how long the new config must stay healthy')
    .option('--timeout <duration>', 'stop waiting for a final status after this', '60s')
    .action(
      async (
        kind: string,
        args: string[],
        opts: {
          dir: string
          node: string
          component?: string
          version?: string
          digest?: string
          url: string[]
          reason?: string
          confirmWindow?: string
          timeout: string
        }
      ) => {
        let raw: Record<string, unknown>
        switch (kind) {
          case 'restart':
            raw = { kind, component: args[0] }
            break
          case 'reconfigure':
            if (args[0] == null) throw new InvalidInputError('needs a NodeConfig YAML file', 'command reconfigure')
            raw = {
              kind,
              config: await readConfigFile(args[0]),
              ...(opts.confirmWindow != null ? { confirmWindowMs: parseMs(opts.confirmWindow) } : {})
            }
            break
          case 'update':
            raw = { kind, component: opts.component, version: opts.version, artifactDigest: opts.digest, artifactUrls: opts.url }
            break
          case 'emergency':
            raw = { kind, action: args[0], reason: opts.reason }
            break
          default:
            throw new InvalidInputError(`unknown kind "${kind}" (restart, reconfigure, update, emergency)`, 'command')
        }
        await drive(opts.dir, opts.node, parseCommandSpec(raw), opts.timeout)
      }
    )

  const config = program.command('config').description('node configs')
  config
    .command('push')
    .description(
      "push a manager-owned NodeConfig fragment (YAML, proto JSON names) to one node: tried in try-mode there; prints the command's status updates"
    )
    .requiredOption('--dir <dir>', 'state directory of the running `up`')
    .requiredOption('--node <id>', 'the node')
    .argument('<file>', 'the NodeConfig fragment (YAML or JSON)')
    .option('--confirm-window <duration>', 'how long the new config must stay healthy')
    .option('--timeout <duration>', 'stop waiting for a final status after this', '60s')
    .action(async (file: string, opts: { dir: string; node: string; confirmWindow?: string; timeout: string }) => {
      const spec = parseCommandSpec({
        kind: 'reconfigure',
        config: await readConfigFile(file),
        ...(opts.confirmWindow != null ? { confirmWindowMs: parseMs(opts.confirmWindow) } : {})
      })
      await drive(opts.dir, opts.node, spec, opts.timeout)
    })

  return program
}

/** The first line of an error's message (grpc-js and http errors may carry more). */
export function oneLine(err: unknown): string {
  return (String((err as Error | undefined)?.message ?? err).split('\n')[0] ?? '').trim()
}

/**
 * Runs the CLI; resolves to the exit code (never exits the process itself).
 * Every failure is one `error:` line; the stack only with --debug.
 */
export async function runCli(argv: string[], io: CliIo, onUp?: (net: DevNetwork) => void): Promise<number> {
  try {
    let code = EXIT_OK
    await buildProgram(io, onUp, (c) => (code = c)).parseAsync(argv, { from: 'user' })
    return code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    const debug = argv.includes('--debug')
    io.err(`error: ${debug ? ((err as Error).stack ?? String(err)) : oneLine(err)}\n`)
    return EXIT_FAILED
  }
}
