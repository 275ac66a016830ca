import { readFile } from 'node:fs/promises'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import type { NodeConfig, Phase } from '@mycelium/core-interfaces'

// Each command loads what it needs when it runs (dynamic imports below): `--help`,
// `status` and `config validate` never load the agent, winston, prom-client or
// the gRPC servers, so they start in little more than node's own start.

export interface CliIo {
  out(text: string): void
  err(text: string): void
  env: NodeJS.ProcessEnv
  /** Resolves when the operator asks to stop (first SIGINT/SIGTERM in the bin). */
  untilStopped(): Promise<void>
  /** Log stream (stdout in the bin). */
  logStream?: NodeJS.WritableStream
  /** Registers the handler for uncaught errors (the bin wires process events). */
  onUnexpectedError?(handler: (err: unknown) => void): void
  /** stdout is a terminal: `dev` prints a live readable view instead of JSON log lines. @default false */
  isTTY?: boolean
  /** `run`: called once, the first time the agent is MANAGED (bin: the release launcher then writes its warm code cache). */
  firstManaged?(): void
  /** `run`: the argv of `node-core csr-child` (the bin: its own executable); unset: CSRs are made in this process. */
  csrCommand?: readonly string[]
}

/** Exit codes (documented in --help): 0 ok, 1 runtime failure, 2 bad usage or config, 3 no agent answering. */
/** RESTART (75, EX_TEMPFAIL): start me again — the slot launcher does at once (into a trial slot after an update). */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, RESTART: 75 } as const

const collect = (value: string, previous: string[]): string[] => [...previous, value]

/** A whole number in [min, max] in plain decimal digits ("1e3", "1.5", "abc", "-1" are refused). */
export function parseWhole(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`)
    return n
  }
}

/** The join token in `file`, or an InvalidConfigError naming the flag or key and the file (exit 2). */
async function readJoinToken(file: string, where: string): Promise<string> {
  const { InvalidConfigError } = await import('@mycelium/core-interfaces')
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new InvalidConfigError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, `${where} ${file}`)
  }
  const token = text.trim()
  if (token === '') throw new InvalidConfigError('is empty', `${where} ${file}`)
  return token
}

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('node-core')
    .description('The Mycelium minimal core: the agent on every node.')
    .addHelpText('after', '\nExit codes: 0 ok, 1 runtime failure, 2 bad usage or config, 3 no agent answering (status).')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .option('--debug', 'print the stack of an unexpected error')

  program
    .command('run')
    .description('run the agent (the daemon)')
    .requiredOption('--config <file>', 'NodeConfig YAML file')
    .option('--set <key=value>', 'override a config key, e.g. --set logging.level=debug (repeatable)', collect, [])
    .option('--join-token-file <file>', 'file holding the join token for the first enrolment')
    .action(async (opts: { config: string; set: string[]; joinTokenFile?: string }) => {
      const [
        { loadConfig },
        { stateDirOf },
        { prepareStatusSocket },
        { createLogger },
        { MyceliumNode },
        { Supervisor },
        { logLevel, statusSocketPath }
      ] = await Promise.all([
        import('./config.js'),
        import('./identity.js'),
        import('./status-server.js'),
        import('./logging.js'),
        import('./node.js'),
        import('./supervisor.js'),
        import('./package-init.js')
      ])
      // Everything that can be refused is checked before anything is written.
      const config = await loadConfig({ file: opts.config, env: io.env, sets: opts.set })
      const tokenFile = opts.joinTokenFile ?? (config.identity?.joinTokenFile || undefined)
      const joinToken =
        tokenFile != null
          ? await readJoinToken(tokenFile, opts.joinTokenFile != null ? '--join-token-file' : 'identity.joinTokenFile')
          : undefined
      const socketPath = statusSocketPath(config, stateDirOf(config))
      if (socketPath !== '') await prepareStatusSocket(socketPath, { dryRun: true })
      const log = createLogger({
        level: logLevel(config),
        ...(config.logging?.format ? { format: config.logging.format } : {}),
        defaults: { nodeId: config.nodeId },
        debug: program.opts<{ debug?: boolean }>().debug === true,
        ...(io.logStream != null ? { stream: io.logStream } : {})
      })
      let giveUp: () => void = () => undefined
      const gaveUp = new Promise<'gave-up'>((resolve) => (giveUp = () => resolve('gave-up')))
      let restart: () => void = () => undefined
      const restarting = new Promise<'restart'>((resolve) => (restart = () => resolve('restart')))
      const { slotPlaceFromEnv, trialWindowFromEnv } = await import('./self-update.js')
      const place = slotPlaceFromEnv(io.env)
      const trialWindowMs = trialWindowFromEnv(io.env)
      const node = new MyceliumNode(config, log, {
        ...(joinToken != null ? { joinToken } : {}),
        setLogLevel: (level) => log.setLevel(level),
        selfUpdate: { ...(place != null ? { place } : {}), requestRestart: restart, ...(trialWindowMs != null ? { trialWindowMs } : {}) },
        ...(io.csrCommand != null ? { csrCommand: io.csrCommand } : {})
      })
      if (io.firstManaged != null) {
        const { Phase: Phases } = await import('@mycelium/core-interfaces')
        const firstManaged = io.firstManaged
        const onTransition = (t: { to: Phase }): void => {
          if (t.to !== Phases.MANAGED) return
          node.agent.off('transition', onTransition)
          // After the transition's own listeners (status, watchers): not in the way of MANAGED going out.
          setImmediate(firstManaged)
        }
        node.agent.on('transition', onTransition)
      }
      const supervisor = new Supervisor(node, {}, log.forComponent('node-core:supervisor'), giveUp)
      io.onUnexpectedError?.((err) => void supervisor.crashed(err))
      await node.start()
      const why = await Promise.race([io.untilStopped(), gaveUp, restarting])
      await node.stop()
      log.close()
      if (why === 'gave-up') setExit(EXIT.FAILED)
      if (why === 'restart') setExit(EXIT.RESTART)
    })

  program
    .command('dev')
    .description('the embedded default: a dev network in this process and agents that hand off to it (npm start)')
    .option('--agents <n>', 'number of agents (1–500)', parseWhole(1, 500), 1)
    // The upper bound (the longest timer) is checked in the action: it lives in core-interfaces, not loaded for --help.
    .option(
      '--heartbeat <ms>',
      'heartbeat interval in ms (50 up to the longest timer, ~24.8 days)',
      parseWhole(50, Number.MAX_SAFE_INTEGER),
      1000
    )
    .addOption(
      new Option(
        '--log-level <level>',
        'log level (default: info; warn on a terminal, where a live view of each node replaces the info lines)'
      ).choices(['error', 'warn', 'info', 'debug'])
    )
    .action(async (opts: { agents: number; heartbeat: number; logLevel?: string }) => {
      const { MAX_TIMER_MS } = await import('@mycelium/core-interfaces')
      if (opts.heartbeat > MAX_TIMER_MS)
        throw new UsageError(
          `option '--heartbeat <ms>' argument '${opts.heartbeat}' is invalid. must be a whole number from 50 to ${MAX_TIMER_MS}`
        )
      const [{ createLogger }, { startDev }, { attachDevView }] = await Promise.all([
        import('./logging.js'),
        import('./dev.js'),
        import('./dev-view.js')
      ])
      const tty = io.isTTY === true
      const log = createLogger({
        level: opts.logLevel ?? (tty ? 'warn' : 'info'),
        debug: program.opts<{ debug?: boolean }>().debug === true,
        ...(io.logStream != null ? { stream: io.logStream } : {})
      })
      const session = await startDev({ agents: opts.agents, heartbeatMs: opts.heartbeat }, log)
      io.out(
        [
          '',
          `Mycelium dev network with ${opts.agents} agent(s) — Ctrl-C stops everything.`,
          `  status:  node-core status        (NodeStatus on ${session.endpoints.status})`,
          `  http:    http://${session.endpoints.http}/readyz  /metrics  /healthz`,
          `  drive:   dev-network nodes --dir ${session.network.dir}   (and: command, config push, fault)`,
          ''
        ].join('\n')
      )
      const detachView = tty ? attachDevView(session.nodes, io.out) : () => undefined
      await io.untilStopped()
      detachView()
      await session.stop()
      log.close()
    })

  program
    .command('status')
    .description(
      'show the status of a running agent: --socket, else the daemon of --config (default /etc/mycelium/node.yaml when it exists: its runtime.json, status.socketPath or <stateDir>/status.sock), else a dev agent'
    )
    .option('--socket <path>', 'NodeStatus unix socket path (or host:port)')
    .option('--config <file>', "the daemon's NodeConfig YAML: status finds the daemon it configures")
    .option('--json', 'print JSON (with --watch: one JSON object per line)')
    .option('--watch', 'stream changes until Ctrl-C: one line per change')
    .action(async (opts: { socket?: string; config?: string; json?: boolean; watch?: boolean }) => {
      const [{ StatusReport }, { fetchStatus, formatStatusLine, formatStatusWithRuntime, locateStatus, watchStatus }] = await Promise.all([
        import('@mycelium/core-interfaces'),
        import('./status-command.js')
      ])
      const where = await locateStatus(opts, io.env)
      if (opts.watch === true) {
        const stop = new AbortController()
        void io.untilStopped().then(() => stop.abort())
        let last = ''
        try {
          await watchStatus(
            where.address,
            (s) => {
              const line = opts.json === true ? JSON.stringify(StatusReport.toJSON(s)) : formatStatusLine(s)
              // The server also resends every few seconds: print changes only.
              if (line === last) return
              last = line
              io.out(opts.json === true ? `${line}\n` : `${new Date().toISOString()}  ${line}\n`)
            },
            stop.signal
          )
        } catch (err) {
          io.err(`error: ${oneLine(err)}\n`)
          setExit(EXIT.UNREACHABLE)
        }
        return
      }
      let status: import('@mycelium/core-interfaces').StatusReport
      try {
        status = await fetchStatus(where.address)
      } catch (err) {
        io.err(`error: ${oneLine(err)}\n`)
        setExit(EXIT.UNREACHABLE)
        return
      }
      io.out(
        opts.json === true ? `${JSON.stringify(StatusReport.toJSON(status), null, 2)}\n` : formatStatusWithRuntime(status, where.runtime)
      )
    })

  const readToken = async (file: string | undefined, config: NodeConfig): Promise<string | undefined> => {
    const f = file ?? (config.identity?.joinTokenFile || undefined)
    return f != null
      ? await readJoinToken(f, file != null ? '--join-token-file' : 'identity.joinTokenFile')
      : config.identity?.joinToken || undefined
  }

  const identity = program.command('identity').description('the node identity (key never leaves the node)')
  identity
    .command('init')
    .description('create the key and enrol with the join token (no-op when enrolled)')
    .requiredOption('--config <file>', 'NodeConfig YAML file')
    .option('--join-token-file <file>', 'file holding the join token')
    .action(async (opts: { config: string; joinTokenFile?: string }) => {
      const [{ loadConfig }, { initIdentity }] = await Promise.all([import('./config.js'), import('./recover.js')])
      const config = await loadConfig({ file: opts.config, env: io.env })
      io.out(`${await initIdentity(config, await readToken(opts.joinTokenFile, config))}\n`)
    })
  identity
    .command('show')
    .description('show the identity state, SPIFFE ID and validity')
    .requiredOption('--config <file>', 'NodeConfig YAML file')
    .action(async (opts: { config: string }) => {
      const [{ loadConfig }, { describeIdentity }] = await Promise.all([import('./config.js'), import('./recover.js')])
      io.out(`${await describeIdentity(await loadConfig({ file: opts.config, env: io.env }))}\n`)
    })

  program
    .command('recover')
    .description(
      'manual recovery (stop the daemon first): show | reset-config | re-enrol | diagnostics --out <file.tar.gz> | rollback [--prefix <dir>]'
    )
    .argument('<action>', 'show, reset-config, re-enrol, diagnostics or rollback (switch A/B slots)')
    .requiredOption('--config <file>', 'NodeConfig YAML file')
    .option('--join-token-file <file>', 'join token for re-enrol')
    .option('--out <file>', 'diagnostics tarball to write')
    .option('--prefix <dir>', 'rollback: the slot launcher prefix (slots/, boot.json) (default: NODE_CORE_PREFIX or /opt/mycelium)')
    .action(async (action: string, opts: { config: string; joinTokenFile?: string; out?: string; prefix?: string }) => {
      if (action === 'rollback') {
        const { rollbackSlots, DEFAULT_SLOT_PREFIX } = await import('./self-update-recover.js')
        io.out(`${await rollbackSlots(opts.prefix ?? (io.env.NODE_CORE_PREFIX || DEFAULT_SLOT_PREFIX), 'node-core recover rollback')}\n`)
        return
      }
      const [{ loadConfig }, { exportDiagnostics, reEnrol, recoveryReport, resetToLastKnownGood }] = await Promise.all([
        import('./config.js'),
        import('./recover.js')
      ])
      const config = await loadConfig({ file: opts.config, env: io.env })
      switch (action) {
        case 'show':
          io.out(`${await recoveryReport(config)}\n`)
          return
        case 'reset-config':
          io.out(`${await resetToLastKnownGood(config)}\n`)
          return
        case 're-enrol':
          io.out(`${await reEnrol(config, await readToken(opts.joinTokenFile, config))}\n`)
          return
        case 'diagnostics': {
          if (opts.out == null) throw new UsageError('diagnostics needs --out <file.tar.gz>')
          const files = await exportDiagnostics(config, opts.out)
          io.out(`wrote ${opts.out} (${files.length} entries, no private keys or join tokens)\n`)
          return
        }
        default:
          throw new UsageError(`unknown recover action "${action}" (show, reset-config, re-enrol, diagnostics, rollback)`)
      }
    })

  program
    .command('peers')
    .description("peer tools: ping <host:port> calls a peer's PeerAssist Ping over mTLS with this node's identity")
    .argument('<action>', 'ping')
    .argument('<address>', "the peer's PeerAssist address (peers.listenAddress)")
    .requiredOption('--config <file>', 'NodeConfig YAML file (whose identity calls)')
    .action(async (action: string, address: string, opts: { config: string }) => {
      if (action !== 'ping') throw new UsageError(`unknown peers action "${action}" (ping)`)
      const [{ loadConfig }, { pingPeer, formatPeerPing }] = await Promise.all([import('./config.js'), import('./peers-command.js')])
      const config = await loadConfig({ file: opts.config, env: io.env })
      try {
        io.out(`${formatPeerPing(address, await pingPeer(config, address))}\n`)
      } catch (err) {
        io.err(`error: ${oneLine(err)}\n`)
        setExit(EXIT.UNREACHABLE)
      }
    })

  // Not for operators (hidden from --help): the daemon makes each CSR in a child running this,
  // so the X.509 library never loads into it (identity.ts `csrMakerFor`). stdin: the request; stdout: DER.
  program
    .command('csr-child', { hidden: true })
    .description('make one CSR: a JSON request {spiffeId, keyPem} on stdin, the DER on stdout')
    .action(async () => {
      const [{ serveCsrRequest }, { isInvalidInputError }] = await Promise.all([
        import('@mycelium/basic-net'),
        import('@mycelium/core-interfaces')
      ])
      try {
        await serveCsrRequest(process.stdin, process.stdout)
      } catch (err) {
        if (!isInvalidInputError(err)) throw err
        io.err(`error: ${(err as Error).message}\n`)
        setExit(EXIT.USAGE)
      }
    })

  const config = program.command('config').description('configuration tools')
  config
    .command('validate')
    .description('validate a NodeConfig YAML file (with MYCELIUM_* variables applied)')
    .argument('<file>', 'the file')
    .action(async (file: string) => {
      const { loadConfig } = await import('./config.js')
      const c = await loadConfig({ file, env: io.env })
      io.out(`${file}: valid (network ${c.networkId}, node ${c.nodeId})\n`)
    })

  return program
}

/**
 * An error as one line for an operator: the first line of its message,
 * without grpc-js's connection boilerplate ("No connection established. Last
 * error: Error: …" and a dangling "Resolution note:").
 */
export function oneLine(err: unknown): string {
  const e = err as Error | undefined
  const first = String(e?.message ?? err).split('\n')[0] ?? ''
  return first
    .replace(/No connection established\. Last error: (?:Error: )?/, '')
    .replace(/\.?\s*Resolution note:.*$/, '')
    .trim()
}

/** The command line is wrong: exit with EXIT.USAGE. */
class UsageError extends Error {
  static readonly NAME = 'UsageError'
  override readonly name = UsageError.NAME
}
const isUsageError = (err: unknown): err is UsageError => err instanceof Error && err.name === UsageError.NAME

/**
 * Runs the CLI; resolves to the exit code. Every failure is one `error:`
 * line saying what and where (bad usage or config: exit 2; anything else:
 * exit 1); the stack only with --debug.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let code: number = EXIT.OK
  const debug = argv.includes('--debug')
  try {
    await buildProgram(io, (c) => (code = c)).parseAsync(argv, { from: 'user' })
    return code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE
    const e = err as Error
    if (isUsageError(err) || (await import('@mycelium/core-interfaces')).isInvalidConfigError(err)) {
      io.err(`error: ${debug ? (e.stack ?? String(err)) : oneLine(err)}\n`)
      return EXIT.USAGE
    }
    io.err(`error: ${debug ? (e.stack ?? String(err)) : `${oneLine(err)} (${e.name ?? 'Error'}; --debug for the stack)`}\n`)
    return EXIT.FAILED
  }
}
