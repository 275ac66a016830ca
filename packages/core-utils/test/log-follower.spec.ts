import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LogFollower } from '../src/index.js'

describe('LogFollower (a real file another process appends to)', () => {
  let dir: string
  let path: string
  let lines: string[]
  const follower = (maxBytes = 1 << 20): LogFollower => new LogFollower(path, (l) => lines.push(l), { maxBytes })

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'log-follower-'))
    path = join(dir, 'child.log')
    lines = []
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('hands over whole lines only: a partial line waits for its end, blank lines are dropped', async () => {
    const f = follower()
    await f.begin(false)
    writeFileSync(path, 'one\n\ntw')
    await f.poll()
    expect(lines).toEqual(['one'])
    appendFileSync(path, 'o\nthree\n')
    await f.poll()
    expect(lines).toEqual(['one', 'two', 'three'])
  })

  it('from the end skips what an adopted process wrote before we came', async () => {
    writeFileSync(path, 'old 1\nold 2\n')
    const f = follower()
    await f.begin(true)
    appendFileSync(path, 'new\n')
    await f.poll()
    expect(lines).toEqual(['new'])
  })

  it('a missing file is not an error: following starts when it appears', async () => {
    const f = follower()
    await f.begin(true)
    await f.poll()
    writeFileSync(path, 'first\n')
    await f.poll()
    expect(lines).toEqual(['first'])
  })

  it('truncates the file in place past maxBytes, and keeps following after', async () => {
    const f = follower(16)
    await f.begin(false)
    writeFileSync(path, 'a long enough line\n')
    await f.poll()
    expect(lines).toEqual(['a long enough line'])
    expect(statSync(path).size).toBe(0)
    appendFileSync(path, 'after\n')
    await f.poll()
    expect(lines).toEqual(['a long enough line', 'after'])
  })

  it('a file replaced by a shorter one is read from its start', async () => {
    const f = follower()
    await f.begin(false)
    writeFileSync(path, 'line of the first file\n')
    await f.poll()
    writeFileSync(path, 'short\n')
    await f.poll()
    expect(lines).toEqual(['line of the first file', 'short'])
  })

  it('with intervalMs it polls on its own timer (no poll() from the owner)', async () => {
    const f = new LogFollower(path, (l) => lines.push(l), { maxBytes: 1 << 20, intervalMs: 5 })
    await f.start(false)
    writeFileSync(path, 'ticked\n')
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (lines.length > 0) {
          clearInterval(check)
          resolve()
        }
      }, 5)
    })
    f.stop()
    expect(lines).toEqual(['ticked'])
  })

  it('a poll asked for while another runs still reads what was written before it was asked for', async () => {
    const f = follower()
    await f.begin(false)
    writeFileSync(path, 'early\n')
    const first = f.poll() // in flight: it may have looked before the next line landed
    appendFileSync(path, 'last words\n')
    await f.poll()
    expect(lines).toEqual(['early', 'last words'])
    await first
  })
})
