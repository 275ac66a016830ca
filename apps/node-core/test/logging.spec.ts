import { Writable } from 'node:stream'
import { createLogger, type LoggingOptions } from '../src/logging.js'

function capture(options: LoggingOptions = {}) {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { lines, log: createLogger({ format: 'json', stream, ...options }) }
}
const flush = () => new Promise((resolve) => setImmediate(resolve))

describe('the process logger', () => {
  it('lets a repeating warning through 3 times a minute, then says how many it dropped', async () => {
    let now = 0
    const { lines, log } = capture({ now: () => now })
    const c = log.forComponent('spore-client')
    for (let i = 0; i < 10; i++) c.warn('spore source failed', { source: 'https' })
    c.warn('another warning')
    log.forComponent('other').warn('spore source failed')
    await flush()
    expect(lines.map((l) => `${l.component}:${l.message}`)).toEqual([
      'spore-client:spore source failed',
      'spore-client:spore source failed',
      'spore-client:spore source failed',
      'spore-client:another warning',
      'other:spore source failed'
    ])
    now = 60_000
    c.warn('spore source failed', { source: 'https' })
    await flush()
    expect(lines.at(-1)).toMatchObject({ message: 'spore source failed', suppressed: 7 })
    log.close()
  })

  it('never rate-limits errors or info', async () => {
    const { lines, log } = capture()
    for (let i = 0; i < 5; i++) {
      log.error('e')
      log.info('i')
    }
    await flush()
    expect(lines).toHaveLength(10)
    log.close()
  })

  it('puts a stack on error lines only, unless --debug', async () => {
    const quiet = capture()
    quiet.log.warn('w', { err: new Error('boom') })
    quiet.log.error('e', { err: new Error('boom') })
    await flush()
    expect(quiet.lines[0]!.err).toEqual({ error: 'boom', name: 'Error' })
    expect(quiet.lines[1]!.err.stack).toMatch(/at /)
    const debug = capture({ debug: true })
    debug.log.warn('w', { err: new Error('boom') })
    await flush()
    expect(debug.lines[0]!.err.stack).toMatch(/at /)
    quiet.log.close()
    debug.log.close()
  })

  it("writes winston's lines: keys sorted, a line's fields over the defaults over child fields, bigints and cycles safe", () => {
    const out: string[] = []
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        out.push(chunk.toString('utf8'))
        done()
      }
    })
    const log = createLogger({ format: 'json', stream, defaults: { nodeId: 'n1' } })
    const cycle: Record<string, unknown> = { a: 1 }
    cycle.self = cycle
    log
      .child({ phase: 'OUTER', nodeId: 'child' })
      .forComponent('c')
      .info('hello', { component: 'field', n: 10n, cycle, timestamp: 't0', message: 'more' })
    log.debug('hidden at info')
    log.setLevel('debug')
    log.forComponent('c').debug('shown')
    expect(out).toEqual([
      '{"component":"field","cycle":{"a":1,"self":"[Circular]"},"level":"info","message":"hello more","n":"10","nodeId":"n1","phase":"OUTER","timestamp":"t0"}\n',
      expect.stringMatching(
        /^\{"component":"c","level":"debug","message":"shown","nodeId":"n1","timestamp":"\d{4}-\d\d-\d\dT[\d:.]+Z"\}\n$/
      )
    ])
    expect(log.level()).toBe('debug')
    log.close()
    log.error('after close')
    expect(out).toHaveLength(2)
  })

  it('pretty: time, coloured level, where, message, the other fields', () => {
    let line = ''
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        line += chunk.toString('utf8')
        done()
      }
    })
    createLogger({ format: 'pretty', stream, defaults: { nodeId: 'n1' } })
      .forComponent('spore-client')
      .warn('source failed', { timestamp: 'T', source: 'https' })
    expect(line).toBe('T \u001b[33mwarn\u001b[39m [n1 spore-client] source failed {"source":"https"}\n')
  })
})
