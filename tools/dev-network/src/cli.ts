import { readFile } from 'node:fs/promises'
import { Command, CommanderError } from 'commander'
import { startDevNetwork, type DevNetwork } from './dev-network.js'
import { parseFaultAction, sendFault, startControlServer } from './control.js'
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

export function buildProgram(io: CliIo, onUp?: (net: DevNetwork) => void): Command {
  const program = new Command('dev-network')
    .description('Reference managers for a local Mycelium network: Network Manager, Command Channel, Spore Manager.')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .option('--debug', 'print the stack of an error')
    .addHelpText('after', '\nExit codes: 0 ok, 1 refused or failed (one `error:` line; --debug for the stack), 2 bad command line.')

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
      const e = net.endpoints
      io.out(
        [
          `dev network "${net.networkId}" up (state in ${net.dir})`,
          `  network manager  ${e.networkManager}  (mTLS)`,
          `  enrolment        ${e.enrollment}  (TLS, join token)`,
          `  spore manager    ${e.sporeManager}  (mTLS)`,
          `  bootstrap file   ${net.bootstrapFile}`,
          `  join token       ${net.joinToken}`,
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
    await buildProgram(io, onUp).parseAsync(argv, { from: 'user' })
    return EXIT_OK
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    const debug = argv.includes('--debug')
    io.err(`error: ${debug ? ((err as Error).stack ?? String(err)) : oneLine(err)}\n`)
    return EXIT_FAILED
  }
}
