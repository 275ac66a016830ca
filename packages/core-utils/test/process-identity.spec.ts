import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { isAlive, processStartTime } from '../src/index.js'

describe('process identity (PID + start time)', () => {
  it('names a running process, and no longer once it has exited and been reaped', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    await once(child, 'spawn')
    const startTime = processStartTime(child.pid!)
    expect(startTime).toMatch(/^\d+$/)
    expect(isAlive({ pid: child.pid!, startTime: startTime! })).toBe(true)
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(processStartTime(child.pid!)).toBeUndefined()
    expect(isAlive({ pid: child.pid!, startTime: startTime! })).toBe(false)
  })

  it('a PID with another start time is not the same process (a reused PID)', () => {
    const own = processStartTime(process.pid)!
    expect(isAlive({ pid: process.pid, startTime: own })).toBe(true)
    expect(isAlive({ pid: process.pid, startTime: String(Number(own) + 1) })).toBe(false)
  })
})
