import { createHash } from 'node:crypto'
import { request } from 'node:https'
import { expectThat, CheckSkippedError, CheckFailedError } from '../errors.js'
import type { CheckContext } from '../context.js'
import type { Check } from './check.js'

interface Response {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

function fetch(ctx: CheckContext, url: string, method: 'GET' | 'HEAD', range?: string): Promise<Response> {
  const ca = ctx.identity.material()?.caPem
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ...(ca != null ? { ca } : {}),
        headers: range != null ? { range } : {},
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(ctx.maxWaitMs)]),
        // The Update Manager's certificate names a manager SPIFFE id and its host; the CA is what is trusted.
        checkServerIdentity: () => undefined
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end()
  })
}

export const artifactsRangedGet: Check = {
  name: 'artifacts.ranged-get',
  proves:
    'The Update Manager serves an artifact over TLS with a certificate from the network CA: HEAD gives its size, a full GET has that size (and the expected sha256), a ranged GET (bytes=N-) answers 206 with the tail and a matching Content-Range, and a range past the end answers 416: an interrupted self-update resumes instead of starting over.',
  async run(ctx) {
    const url = ctx.init.updateManager
    if (url == null) throw new CheckSkippedError('no Update Manager artifact URL given')
    let head: Response
    try {
      head = await fetch(ctx, url, 'HEAD')
    } catch (err) {
      throw new CheckFailedError(`HEAD ${url}: ${(err as Error).message}`)
    }
    expectThat(head.status === 200, `HEAD ${url} answered ${head.status}`)
    const size = Number(head.headers['content-length'])
    expectThat(Number.isInteger(size) && size > 1, `HEAD gave no usable content-length ("${String(head.headers['content-length'])}")`)
    const full = await fetch(ctx, url, 'GET')
    expectThat(full.status === 200, `GET answered ${full.status}`)
    expectThat(full.body.length === size, `GET sent ${full.body.length} bytes, HEAD said ${size}`)
    const digest = `sha256:${createHash('sha256').update(full.body).digest('hex')}`
    if (ctx.init.artifactDigest != null)
      expectThat(digest === ctx.init.artifactDigest, `the artifact's digest is ${digest}, expected ${ctx.init.artifactDigest}`)
    const from = Math.floor(size / 2)
    const tail = await fetch(ctx, url, 'GET', `bytes=${from}-`)
    expectThat(tail.status === 206, `GET with Range bytes=${from}- answered ${tail.status}, not 206`)
    expectThat(
      tail.headers['content-range'] === `bytes ${from}-${size - 1}/${size}`,
      `Content-Range is "${String(tail.headers['content-range'])}", expected "bytes ${from}-${size - 1}/${size}"`
    )
    expectThat(tail.body.equals(full.body.subarray(from)), `the ranged GET's bytes differ from the tail of the full GET`)
    const past = await fetch(ctx, url, 'GET', `bytes=${size}-`)
    expectThat(past.status === 416, `GET with Range bytes=${size}- (past the end) answered ${past.status}, not 416`)
    return `${size} bytes, ${digest}${ctx.init.artifactDigest == null ? ' (no expected digest given)' : ''}; resumed from byte ${from}`
  }
}
