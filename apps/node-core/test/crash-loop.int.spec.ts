import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { until } from '@mycelium/testing'
import { BIN } from './helpers/daemon.js'

/**
 * The shipped daemon (the release artifact, test/helpers/release.ts) SIGKILLed over and over with commands in
 * flight, against a dev network in its own process that queues commands on
 * every command session and re-sends unfinished ones (at-least-once, like a
 * real manager). Asserted: no command id executed twice, every command
 * reaches a final state, the state always loads (no corrupt-file fallback,
 * no journal problem, no exit of its own), and no interrupted-write temp
 * files pile up. CRASH_CYCLES sets the number of cycles (`npm run soak`: 500).
 */
const HARNESS = join(__dirname, 'helpers', 'command-manager.cjs')
const CYCLES = Number(process.env.CRASH_CYCLES ?? 50)
const NODE = 'crash-node'
const FINAL = new Set(['SUCCEEDED', 'FAILED', 'REJECTED'])
/** Log lines that mean a state file did not load as written. */
const STATE_PROBLEM =
  /"message":"(command journal problem|state file unusable|state file recovered|config state problem|cache [^"]* (unusable|ignored)[^"]*)"/

interface Event {
  type: string
  id?: string
  state?: string
  replayed?: boolean
  reason?: string
  t: number
}

function lines(child: ChildProcess, onLine: (line: string) => void): void {
  createInterface({ input: child.stdout! }).on('line', onLine)
  createInterface({ input: child.stderr! }).on('line', onLine)
}

const random = (maxMs: number): number => Math.floor(Math.random() * maxMs)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe(`crash loop: ${CYCLES} SIGKILL cycles of the built daemon with commands in flight`, () => {
  let dir: string
  let manager: ChildProcess
  let daemon: ChildProcess | undefined
  const events: Event[] = []

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-crash-'))
    manager = spawn(process.execPath, [HARNESS, dir, NODE, '3'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    manager.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    createInterface({ input: manager.stdout! }).on('line', (line) => events.push(JSON.parse(line) as Event))
    await until('dev network ready', async () => events.some((e) => e.type === 'ready') || stderr !== '', 30_000)
    if (stderr !== '') throw new Error(stderr)
  }, 60_000)

  afterAll(async () => {
    daemon?.kill('SIGKILL')
    if (manager?.exitCode == null) {
      const exited = new Promise((r) => manager.once('exit', r))
      manager?.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it(
    'no id runs twice, every command finishes, the state always loads',
    async () => {
      const config = join(dir, 'node.yaml')
      const stateProblems: string[] = []
      const ownExits: string[] = []
      const accepted = new Map<string, number>() // fresh ACCEPTED log lines per id, over all boots
      let kills = 0
      let resumed = 0

      /** Starts the daemon; `log` sees its lines. */
      const boot = (log: (line: string) => void = () => undefined): { child: ChildProcess; exited: Promise<void> } => {
        const child = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
        const bootNo = kills
        lines(child, (line) => {
          if (STATE_PROBLEM.test(line)) stateProblems.push(`boot ${bootNo}: ${line}`)
          if (line.includes('"message":"command"') && line.includes('"state":"ACCEPTED"')) {
            const id = /"commandId":"([^"]+)"/.exec(line)?.[1] ?? '?'
            accepted.set(id, (accepted.get(id) ?? 0) + 1)
          }
          if (line.includes('resuming a command interrupted by an agent restart')) resumed++
          log(line)
        })
        const exited = new Promise<void>((resolve) =>
          child.once('exit', (code, signal) => {
            if (signal !== 'SIGKILL' && !(signal === 'SIGTERM' || code === 0)) ownExits.push(`boot ${bootNo}: exit ${code ?? signal}`)
            resolve()
          })
        )
        daemon = child
        return { child, exited }
      }
      const kill = async (run: { child: ChildProcess; exited: Promise<void> }): Promise<void> => {
        if (run.child.exitCode == null && run.child.signalCode == null) {
          run.child.kill('SIGKILL')
          kills++
        }
        await run.exited
      }

      for (let cycle = 0; cycle < CYCLES; cycle++) {
        // Every fifth cycle starts with an extra kill early in the boot.
        if (cycle % 5 === 4) {
          const early = boot()
          await sleep(random(300))
          await kill(early)
        }
        const mode = cycle % 4
        let trigger!: () => void
        const fired = new Promise<void>((resolve) => (trigger = resolve))
        const since = Date.now()
        const run = boot((line) => {
          if (mode === 1 && line.includes('"message":"phase transition"') && line.includes('"to":"MANAGED"'))
            setTimeout(trigger, random(300))
          // Right after a journal write became visible (a command state or a config trial step).
          if (mode === 3 && (line.includes('"message":"command"') || line.includes('config promoted') || line.includes('config reverted')))
            setTimeout(trigger, random(5))
        })
        if (mode === 0) setTimeout(trigger, random(1000))
        if (mode === 2) {
          // When the manager sees a command in flight.
          const poll = setInterval(() => {
            if (events.some((e) => e.t >= since && e.type === 'update' && (e.state === 'ACCEPTED' || e.state === 'RUNNING'))) {
              clearInterval(poll)
              setTimeout(trigger, random(30))
            }
          }, 5)
          void fired.then(() => clearInterval(poll))
        }
        await Promise.race([fired, run.exited, sleep(6000)])
        trigger()
        await kill(run)
      }

      // The last boot runs to the end: every command the manager ever sent finishes.
      manager.stdin!.write('stop-sending\n')
      const last = boot()
      const sent = events.filter((e) => e.type === 'sent').map((e) => e.id!)
      const finalOf = (id: string): boolean => events.some((e) => e.type === 'update' && e.id === id && FINAL.has(e.state!))
      await until('every command final', async () => sent.every(finalOf), 120_000, 100).catch(() => undefined)

      // Executed twice: a fresh start (ACCEPTED) logged more than once, or a
      // non-replayed status after a final one, as the manager saw it.
      const twice = new Set([...accepted].filter(([, n]) => n > 1).map(([id]) => id))
      for (const id of sent) {
        const updates = events.filter((e) => e.type === 'update' && e.id === id && e.replayed !== true)
        const firstFinal = updates.findIndex((u) => FINAL.has(u.state!))
        if (
          firstFinal >= 0 &&
          updates.slice(firstFinal + 1).some((u) => u.state !== updates[firstFinal]!.state || u.reason !== updates[firstFinal]!.reason)
        )
          twice.add(id)
      }
      const nonFinal = sent.filter((id) => !finalOf(id))
      const stateDir = join(dir, 'state')
      const temps = readdirSync(stateDir, { recursive: true, encoding: 'utf8' }).filter(
        (f) => /\.tmp(\.prev)?$/.test(f) && !f.includes(`.${last.child.pid}.`)
      )
      last.child.kill('SIGTERM')
      await last.exited
      const reasons = (): string[] => {
        const count = new Map<string, number>()
        for (const id of sent) {
          const f = events.find((e) => e.type === 'update' && e.id === id && FINAL.has(e.state!) && e.state !== 'SUCCEEDED')
          if (f != null)
            count.set(
              `${f.state} ${f.reason!.replace(/v\d+|\d{4}-[0-9T:.Z-]+|crash-\d+/g, '…')}`,
              (count.get(`${f.state} ${f.reason!.replace(/v\d+|\d{4}-[0-9T:.Z-]+|crash-\d+/g, '…')}`) ?? 0) + 1
            )
        }
        return [...count].map(([r, n]) => `    ${n} × ${r}`)
      }
      const finals = (state: string): number =>
        sent.filter((id) => events.some((e) => e.type === 'update' && e.id === id && e.state === state)).length
      console.log(
        [
          `crash loop: ${CYCLES} cycles, ${kills} SIGKILLs, ${sent.length} commands sent`,
          `  executed twice: ${twice.size}, left non-final: ${nonFinal.length}, resumed after a restart: ${resumed}`,
          `  outcomes: ${finals('SUCCEEDED')} succeeded, ${finals('FAILED')} failed, ${finals('REJECTED')} rejected`,
          ...reasons(),
          `  state problems: ${stateProblems.length}, exits of its own: ${ownExits.length}, leftover temp files: ${temps.length}`,
          `  state dir ${statSync(stateDir).isDirectory() ? 'present' : 'missing'}`
        ].join('\n')
      )
      expect(kills).toBeGreaterThanOrEqual(CYCLES)
      expect(sent.length).toBeGreaterThan(CYCLES)
      expect([...twice]).toEqual([])
      expect(nonFinal).toEqual([])
      expect(stateProblems).toEqual([])
      expect(ownExits).toEqual([])
      expect(temps).toEqual([])
    },
    Math.max(300_000, CYCLES * 15_000)
  )
})
