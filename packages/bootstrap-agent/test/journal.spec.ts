import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command, CommandState, type CommandUpdate } from '@mycelium/core-interfaces'
import { readStateFile, writeStateFile } from '@mycelium/core-utils'
import { planInterrupted, type CommandHandlers, type JournalEntry } from '../src/index.js'
import { CommandExecutor } from '../src/commands/executor.js'
import { CommandJournal } from '../src/commands/journal.js'

/**
 * The command journal and executor on real files (no sockets): write-ahead
 * order, exactly-once across restarts, the restart rule, re-delivery, and a
 * write failure that refuses the command and heals by itself.
 */
let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'journal-spec-'))
})
afterEach(() => {
  chmodSync(dir, 0o700)
  rmSync(dir, { recursive: true, force: true })
})

let seq = 0
const restart = (component: string, overrides: Partial<Command> = {}): Command => ({
  commandId: `c-${++seq}`,
  issuedAt: new Date(),
  deadline: new Date(Date.now() + 30_000),
  issuer: 'test',
  kind: { $case: 'restart', value: { component } },
  ...overrides
})

function executorOn(
  journal: CommandJournal,
  handlers: Partial<CommandHandlers> = {}
): { executor: CommandExecutor; ran: string[]; updates: CommandUpdate[] } {
  const ran: string[] = []
  const executor = new CommandExecutor(
    {
      restart: async (c) => void ran.push(c),
      reconfigure: async () => ({ outcome: 'promoted', version: 1 }),
      emergency: async () => undefined,
      ...handlers
    },
    journal,
    { networkId: 'n', nodeId: 'a', operatorKeys: () => undefined }
  )
  const updates: CommandUpdate[] = []
  executor.on('update', (u) => updates.push(u))
  return { executor, ran, updates }
}

const states = (updates: CommandUpdate[], id: string): string[] =>
  updates.filter((u) => u.commandId === id).map((u) => CommandState[u.state])

describe('command journal', () => {
  it('runs an id once across restarts, also past the old 500-entry bound, and answers a re-send with its current status', async () => {
    const path = join(dir, 'commands.bin')
    const first = executorOn(await CommandJournal.open(path))
    const old = restart('x')
    await first.executor.submit(old, 'remote')
    first.executor.journal.close()
    // 520 newer finished entries (the old journal kept 500 and dropped the oldest finished first).
    const at = new Date().toISOString()
    const newer: JournalEntry[] = Array.from({ length: 520 }, (_, i) => ({
      commandId: `newer-${i}`,
      kind: 'restart',
      source: 'remote',
      updates: [{ state: CommandState.SUCCEEDED, reason: '', at }]
    }))
    const kept = JSON.parse((await readStateFile(path))!.data.toString()) as JournalEntry[]
    await writeStateFile(path, Buffer.from(JSON.stringify([...kept, ...newer])))

    const second = executorOn(await CommandJournal.open(path))
    await second.executor.submit(old, 'remote')
    expect(second.ran).toEqual([])
    expect(second.updates.map((u) => [CommandState[u.state], u.replayed])).toEqual([['SUCCEEDED', true]])
    expect(second.executor.journal.size).toBe(521)
  })

  it('applies one rule to each unfinished entry at restart and reports it on the next session', async () => {
    const path = join(dir, 'commands.bin')
    const now = Date.now()
    const entry = (id: string, state: CommandState, cmd: Command | undefined, deadlineMs: number): JournalEntry => ({
      commandId: id,
      kind: cmd?.kind?.$case ?? 'restart',
      source: 'remote',
      updates: [{ state, reason: '', at: new Date(now - 1000).toISOString() }],
      deadline: new Date(now + deadlineMs).toISOString(),
      ...(cmd != null ? { command: Buffer.from(Command.encode(cmd).finish()).toString('base64') } : {})
    })
    const resumable = restart('k3s', { commandId: 'running-in-time' })
    const accepted = restart('http', { commandId: 'accepted-in-time' })
    const entries = [
      entry('running-in-time', CommandState.RUNNING, resumable, 30_000),
      entry('accepted-in-time', CommandState.ACCEPTED, accepted, 30_000),
      entry('running-late', CommandState.RUNNING, restart('z', { commandId: 'running-late' }), -1),
      entry('no-command', CommandState.RUNNING, undefined, 30_000)
    ]
    await writeStateFile(path, Buffer.from(JSON.stringify(entries)))
    expect(planInterrupted(entries[2]!, now).action).toBe('fail')

    const { executor, ran, updates } = executorOn(await CommandJournal.open(path))
    await executor.resumeInterrupted()
    expect(ran.sort()).toEqual(['http', 'k3s'])
    expect(states(updates, 'running-in-time')).toEqual(['RUNNING', 'SUCCEEDED'])
    expect(states(updates, 'accepted-in-time')).toEqual(['RUNNING', 'SUCCEEDED'])
    expect(updates.find((u) => u.commandId === 'running-late')).toMatchObject({
      state: CommandState.FAILED,
      reason: expect.stringContaining('interrupted by an agent restart')
    })
    expect(updates.find((u) => u.commandId === 'no-command')).toMatchObject({
      state: CommandState.FAILED,
      reason: expect.stringContaining('interrupted by an agent restart')
    })
    // Nothing was delivered yet: a session opening now sends all four final statuses.
    expect(
      executor
        .undelivered()
        .map((u) => [u.commandId, CommandState[u.state]])
        .sort()
    ).toEqual([
      ['accepted-in-time', 'SUCCEEDED'],
      ['no-command', 'FAILED'],
      ['running-in-time', 'SUCCEEDED'],
      ['running-late', 'FAILED']
    ])
    executor.journal.close()
    const again = await CommandJournal.open(path)
    expect(again.interrupted).toEqual([])
    again.close()
  })

  it('a command in flight is answered with its current state when re-sent, and runs once', async () => {
    let release!: () => void
    const { executor, ran, updates } = executorOn(await CommandJournal.open(join(dir, 'commands.bin')), {
      restart: (c) => new Promise<void>((resolve) => (release = () => resolve(void ran.push(c))))
    })
    const cmd = restart('slow')
    const done = executor.submit(cmd, 'remote')
    const resend = executor.submit(cmd, 'remote')
    await new Promise((r) => setImmediate(r))
    while (release == null) await new Promise((r) => setTimeout(r, 5))
    release()
    await Promise.all([done, resend])
    expect(ran).toEqual(['slow'])
    // The re-send waited its turn in the queue: it is answered with the outcome, replayed.
    expect(updates.map((u) => [CommandState[u.state], u.replayed])).toEqual([
      ['ACCEPTED', false],
      ['RUNNING', false],
      ['SUCCEEDED', false],
      ['SUCCEEDED', true]
    ])
    executor.journal.close()
  })

  it('refuses a command it cannot journal, with the reason, runs nothing, and heals when the disk does', async () => {
    if (process.getuid?.() === 0) {
      // Root ignores permission bits; the read-only bind mount suite covers root.
      const blocked = join(dir, 'blocked')
      writeFileSync(blocked, 'a file where the journal directory should be')
      const journal = await CommandJournal.open(join(blocked, 'commands.bin'), { retry: { initialMs: 10, maxMs: 20 } })
      const { executor, ran, updates } = executorOn(journal)
      const cmd = restart('x')
      await executor.submit(cmd, 'remote')
      expect(ran).toEqual([])
      expect(updates).toEqual([
        expect.objectContaining({
          commandId: cmd.commandId,
          state: CommandState.REJECTED,
          reason: expect.stringContaining(`cannot write: ${join(blocked, 'commands.bin')}`)
        })
      ])
      expect(journal.problems.join()).toContain(join(blocked, 'commands.bin'))
      rmSync(blocked)
      mkdirSync(blocked)
      // The same id, re-sent after the disk came back, runs (it never ran) and the problem clears.
      await executor.submit(cmd, 'remote')
      expect(ran).toEqual(['x'])
      expect(states(updates, cmd.commandId)).toEqual(['REJECTED', 'ACCEPTED', 'RUNNING', 'SUCCEEDED'])
      expect(journal.writeFailure).toBeUndefined()
      journal.close()
      return
    }
    const journal = await CommandJournal.open(join(dir, 'commands.bin'), { retry: { initialMs: 10, maxMs: 20 } })
    const { executor, ran, updates } = executorOn(journal)
    chmodSync(dir, 0o500)
    const cmd = restart('x')
    await executor.submit(cmd, 'remote')
    expect(ran).toEqual([])
    expect(updates[0]).toMatchObject({ state: CommandState.REJECTED, reason: expect.stringContaining('read-only') })
    chmodSync(dir, 0o700)
    await executor.submit(cmd, 'remote')
    expect(ran).toEqual(['x'])
    journal.close()
  })

  it('never drops an outcome within its retention: at the limit new commands are refused', async () => {
    const journal = await CommandJournal.open(join(dir, 'commands.bin'), { maxEntries: 3 })
    const { executor, ran, updates } = executorOn(journal)
    const cmds = [restart('a'), restart('b'), restart('c'), restart('d')]
    for (const c of cmds) await executor.submit(c, 'remote')
    expect(ran).toEqual(['a', 'b', 'c'])
    expect(updates.at(-1)).toMatchObject({
      commandId: cmds[3]!.commandId,
      state: CommandState.REJECTED,
      reason: expect.stringContaining('command journal full')
    })
    await executor.submit(cmds[0]!, 'remote')
    expect(ran).toEqual(['a', 'b', 'c'])
    journal.close()
  })

  it('drops outcomes only past both their retention and their deadline', async () => {
    const path = join(dir, 'commands.bin')
    const day = 86_400_000
    const finished = (id: string, atMs: number, deadlineMs?: number): JournalEntry => ({
      commandId: id,
      kind: 'restart',
      source: 'remote',
      updates: [{ state: CommandState.SUCCEEDED, reason: '', at: new Date(Date.now() + atMs).toISOString() }],
      ...(deadlineMs != null ? { deadline: new Date(Date.now() + deadlineMs).toISOString() } : {})
    })
    await writeStateFile(
      path,
      Buffer.from(
        JSON.stringify([
          finished('old', -2 * day, -day),
          finished('old-no-deadline', -2 * day),
          finished('old-deadline-ahead', -2 * day, day),
          finished('recent', -1000, -500)
        ])
      )
    )
    const journal = await CommandJournal.open(path, { maxEntries: 3 })
    const { executor, ran } = executorOn(journal)
    await executor.submit(restart('new'), 'remote')
    expect(ran).toEqual(['new'])
    expect(['old', 'old-no-deadline', 'old-deadline-ahead', 'recent'].filter((id) => journal.get(id) != null)).toEqual([
      'old-deadline-ahead',
      'recent'
    ])
    journal.close()
  })

  it('opens on garbage, an empty file or a directory with a named problem, never a throw', async () => {
    const path = join(dir, 'commands.bin')
    for (const damage of [() => writeFileSync(path, ''), () => writeFileSync(path, 'garbage'), () => mkdirSync(path)]) {
      rmSync(path, { recursive: true, force: true })
      damage()
      const journal = await CommandJournal.open(path)
      expect(journal.problems).toEqual([expect.stringContaining(`${path}: `)])
      journal.close()
    }
  })
})
