import { open, stat, type FileHandle } from 'node:fs/promises'
import { LOG_SHIPPER_VERSION } from './versions.js'
import { say, serveComponent } from './component-server.js'

/**
 * log-shipper: tails a log file (parameter `source`, e.g. the agent's JSON
 * log) and appends every whole line to a file sink (parameter `sink`),
 * fsynced after each batch, so the lines survive the node. Follows
 * truncation (starts over) and starts at the end of what is already there
 * (parameter `from`: "end", default, or "start"). Work count: lines shipped.
 */
export async function runLogShipper(): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let sink: FileHandle | undefined
  let shipped = 0
  let problem = ''
  let offset = 0
  let partial = ''
  let source = ''
  let busy = false
  const poll = async (): Promise<void> => {
    if (busy || sink == null) return
    busy = true
    try {
      const size = await stat(source).then(
        (s) => s.size,
        () => 0
      )
      if (size < offset) offset = 0
      if (size > offset) {
        const fh = await open(source, 'r')
        try {
          const buf = Buffer.alloc(Math.min(size - offset, 1 << 20))
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset)
          offset += bytesRead
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n')
          partial = lines.pop() ?? ''
          if (lines.length > 0) {
            await sink.appendFile(`${lines.join('\n')}\n`)
            await sink.sync()
            shipped += lines.length
          }
        } finally {
          await fh.close()
        }
      }
      problem = ''
    } catch (err) {
      problem = `shipping ${source}: ${(err as Error).message}`
    } finally {
      busy = false
    }
  }
  await serveComponent({
    name: 'log-shipper',
    version: LOG_SHIPPER_VERSION,
    begin: async (parameters) => {
      source = parameters.source ?? ''
      const sinkPath = parameters.sink ?? ''
      if (source === '' || sinkPath === '') throw new Error('parameters "source" and "sink" are required')
      sink = await open(sinkPath, 'a')
      offset =
        parameters.from === 'start'
          ? 0
          : await stat(source).then(
              (s) => s.size,
              () => 0
            )
      timer = setInterval(() => void poll(), Number(parameters.intervalMs ?? 500))
      say(`shipping ${source} to ${sinkPath}`)
    },
    health: () => ({ healthy: problem === '', reason: problem, workCount: shipped }),
    end: async () => {
      clearInterval(timer)
      await poll()
      await sink?.close()
    }
  })
}
