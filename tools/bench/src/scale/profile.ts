import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'

/**
 * `BENCH_PROFILE_DIR`: a CPU profile of this child process from its start,
 * written (and begun again) each time the returned function is called — at
 * every stats request — so the last file covers the whole run so far. The
 * bench ends its children with SIGKILL (a crash, for the manager), which
 * would lose a `--cpu-prof`. Without the variable this does nothing.
 */
export function profileFromEnv(role: string): () => void {
  const dir = process.env.BENCH_PROFILE_DIR
  if (dir == null || dir === '') return () => undefined
  const session = new Session()
  session.connect()
  session.post('Profiler.enable', () => session.post('Profiler.start'))
  return () =>
    session.post('Profiler.stop', (err, res) => {
      if (err == null) writeFileSync(join(dir, `${role}-${process.pid}.cpuprofile`), JSON.stringify(res.profile))
      session.post('Profiler.start')
    })
}
