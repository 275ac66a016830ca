import { socketInCmdline } from '../src/orphans.js'

const cmdline = (...args: string[]): string => `${args.join('\0')}\0`

describe('socketInCmdline', () => {
  it('finds the socket argument under our run dir', () => {
    expect(socketInCmdline(cmdline('/usr/bin/node', 'index.cjs', '--socket', '/var/run/c/m.sock', '--x'), '/var/run/c')).toBe(
      '/var/run/c/m.sock'
    )
  })

  it('finds it when it is the first argument too', () => {
    expect(socketInCmdline(cmdline('--socket', '/r/a.sock'), '/r')).toBe('/r/a.sock')
  })

  it('ignores sockets of another run dir, or a prefix of ours that is not a directory', () => {
    expect(socketInCmdline(cmdline('node', '--socket', '/other/m.sock'), '/r')).toBeUndefined()
    expect(socketInCmdline(cmdline('node', '--socket', '/r2/m.sock'), '/r')).toBeUndefined()
  })

  it('ignores a process that only mentions the path without the --socket flag', () => {
    expect(socketInCmdline(cmdline('tail', '-f', '/r/m.sock'), '/r')).toBeUndefined()
    expect(socketInCmdline(cmdline('x', '--socketx', '/r/m.sock'), '/r')).toBeUndefined()
  })
})
