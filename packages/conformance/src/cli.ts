import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { isInvalidInputError, TrustBundle } from '@mycelium/core-interfaces'
import { writeFileAtomic } from '@mycelium/core-utils'
import { CONFORMANCE_CHECKS, runConformance } from './runner.js'
import { exitCodeOf, formatJUnit, formatReport, formatResultLine } from './report.js'
import type { ConformanceInit, ConformanceTriggers } from './types.js'

/** Exit code for a usage error or unusable input (above every failure count, which is capped at 100). */
export const EXIT_USAGE = 101

export interface CliIo {
  out(text: string): void
  err(text: string): void
  /** Environment handed to hooks (the bin passes process.env; the library never reads it). */
  env?: Record<string, string | undefined>
  signal?: AbortSignal
}

const positiveInt = (v: string): number => {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer')
  return n
}

/** A hook: a shell command run with the context in MYCELIUM_* variables; resolves when it exits 0. */
function hook(command: string, env: Record<string, string | undefined>, vars: Record<string, string>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { env: { ...env, ...vars }, stdio: ['ignore', 'ignore', 'pipe'], signal })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000)
    })
    child.on('error', reject)
    child.on('exit', (code, sig) => {
      if (code === 0) resolve()
      else reject(new Error(`hook \`${command}\` exited with ${code ?? sig}${stderr.trim() !== '' ? `: ${stderr.trim()}` : ''}`))
    })
  })
}

/** Reads a file, or names it in the error. */
async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new InvalidArgumentError(`${what} ${path}: ${(err as Error).message}`)
  }
}

/** The `mycelium-conformance` command line. */
export function buildProgram(io: CliIo, done: (code: number) => void): Command {
  const program = new Command('mycelium-conformance')
  program
    .description(
      'Checks a Network Manager, Command Channel, Spore Manager and Update Manager against what the Mycelium node agent relies on. ' +
        'Exit code: the number of failed checks (capped at 100); 101 for a usage error.'
    )
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t), writeErr: (t) => io.err(t) })
    .option('--network-manager <host:port>', 'NetworkManager (mTLS)')
    .option('--enrollment <host:port>', 'NetworkManager.Enroll endpoint (TLS) (default: --network-manager)')
    .option('--command-channel <host:port>', 'CommandChannel (mTLS) (default: --network-manager)')
    .option('--spore-service <host:port>', 'SporeService (mTLS)')
    .option('--update-manager <url>', 'https URL of one artifact the Update Manager serves')
    .option('--artifact-digest <sha256:hex>', "the artifact's expected digest")
    .option('--ca <file>', 'network CA certificate (PEM)')
    .option('--cert <file>', 'node certificate chain (PEM), URI SAN spiffe://<network>/node/<id>')
    .option('--key <file>', 'node private key (PEM)')
    .option('--join-token <file>', 'a file holding a fresh join token: runs the enrolment checks and uses the identity they obtain')
    .option('--node-id <id>', 'node id to enrol as (default: conformance-<random>)')
    .option('--trust-bundle <file>', 'the network trust bundle (proto JSON), to verify spore and operator signatures when not enrolling')
    .option(
      '--command-hook <shell>',
      'makes the manager send this node a command; run with MYCELIUM_NODE_ID, MYCELIUM_NETWORK_ID, MYCELIUM_COMMAND_KIND (restart|emergency)'
    )
    .option('--spore-change-hook <shell>', 'makes the Spore Manager publish a newer sequence of any spore; run with MYCELIUM_NETWORK_ID')
    .option('--only <names...>', 'only these checks (a name, or a prefix ending in "." such as "handoff.")')
    .option('--admission-burst <n>', 'concurrent registrations sent to provoke RESOURCE_EXHAUSTED', positiveInt, 200)
    .option('--max-wait <ms>', 'longest wait for a deadline, lease or retry-after to pass', positiveInt, 30_000)
    .option('--call-timeout <ms>', 'deadline of each call', positiveInt, 5000)
    .option('--junit <file>', 'where to write the JUnit XML report', 'mycelium-conformance.xml')
    .option('--list', 'print every check and what it proves, then exit')
    .action(async (opts: Record<string, string | number | boolean | string[] | undefined>) => {
      if (opts.list === true) {
        for (const c of CONFORMANCE_CHECKS) io.out(`${c.name}\n    ${c.proves}\n`)
        return done(0)
      }
      const str = (k: string): string | undefined => opts[k] as string | undefined
      const idFiles = [str('ca'), str('cert'), str('key')]
      if (idFiles.some((f) => f != null) && idFiles.some((f) => f == null))
        throw new InvalidArgumentError('--ca, --cert and --key go together')
      if (idFiles[0] == null && str('joinToken') == null)
        throw new InvalidArgumentError('give a node identity (--ca, --cert, --key) or a --join-token to enrol one')
      if (str('networkManager') == null && str('sporeService') == null && str('updateManager') == null)
        throw new InvalidArgumentError('name at least one implementation: --network-manager, --spore-service or --update-manager')
      const env = io.env ?? {}
      const signal = io.signal ?? new AbortController().signal
      const triggers: ConformanceTriggers = {}
      const commandHook = str('commandHook')
      if (commandHook != null) {
        triggers.sendCommand = ({ nodeId, networkId, kind, signal: s }) =>
          hook(commandHook, env, { MYCELIUM_NODE_ID: nodeId, MYCELIUM_NETWORK_ID: networkId, MYCELIUM_COMMAND_KIND: kind }, s)
      }
      const sporeHook = str('sporeChangeHook')
      if (sporeHook != null)
        triggers.changeSpores = ({ networkId, signal: s }) => hook(sporeHook, env, { MYCELIUM_NETWORK_ID: networkId }, s)
      const trustBundleFile = str('trustBundle')
      let trustBundle: TrustBundle | undefined
      if (trustBundleFile != null) {
        try {
          trustBundle = TrustBundle.fromJSON(JSON.parse(await readInput(trustBundleFile, '--trust-bundle')))
        } catch (err) {
          throw new InvalidArgumentError(`--trust-bundle ${trustBundleFile}: not a TrustBundle in proto JSON (${(err as Error).message})`)
        }
      }
      const tokenFile = str('joinToken')
      const init: ConformanceInit = {
        ...(str('networkManager') != null ? { networkManager: str('networkManager') } : {}),
        ...(str('enrollment') != null ? { enrollment: str('enrollment') } : {}),
        ...(str('commandChannel') != null ? { commandChannel: str('commandChannel') } : {}),
        ...(str('sporeService') != null ? { sporeService: str('sporeService') } : {}),
        ...(str('updateManager') != null ? { updateManager: str('updateManager') } : {}),
        ...(str('artifactDigest') != null ? { artifactDigest: str('artifactDigest') } : {}),
        ...(idFiles[0] != null ? { identity: { caFile: idFiles[0], certificateFile: idFiles[1]!, keyFile: idFiles[2]! } } : {}),
        ...(tokenFile != null ? { joinToken: (await readInput(tokenFile, '--join-token')).trim() } : {}),
        ...(str('nodeId') != null ? { nodeId: str('nodeId') } : {}),
        ...(trustBundle != null ? { trustBundle } : {}),
        ...(opts.only != null ? { only: opts.only as string[] } : {}),
        triggers,
        admissionBurst: opts.admissionBurst as number,
        maxWaitMs: opts.maxWait as number,
        callTimeoutMs: opts.callTimeout as number,
        onResult: (r) => io.out(`${formatResultLine(r)}\n`),
        signal
      }
      const unknown = (init.only ?? []).filter(
        (o) => !CONFORMANCE_CHECKS.some((c) => c.name === o || (o.endsWith('.') && c.name.startsWith(o)))
      )
      if (unknown.length > 0) throw new InvalidArgumentError(`--only: no check named ${unknown.join(', ')} (see --list)`)
      const report = await runConformance(init)
      // Every check was printed as it finished: end with what did not pass, and the totals.
      io.out(`\n${formatReport(report, { passed: false })}`)
      const junit = str('junit')!
      await writeFileAtomic(junit, formatJUnit(report))
      io.out(`JUnit XML: ${junit}\n`)
      done(exitCodeOf(report))
    })
  return program
}

/** Runs the CLI; resolves with the exit code (never exits the process). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let code = 0
  const program = buildProgram(io, (c) => {
    code = c
  })
  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (err) {
    // Ours (thrown by the action): say why. Commander's own usage errors were printed by commander.
    if (err instanceof InvalidArgumentError || isInvalidInputError(err)) {
      io.err(`mycelium-conformance: ${(err as Error).message}\n`)
      return EXIT_USAGE
    }
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE
    throw err
  }
}
