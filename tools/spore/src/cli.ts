import { readFile } from 'node:fs/promises'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { decodeStrict, InvalidInputError, isInvalidInputError, Spore, TrustBundle, type SignedSpore } from '@mycelium/core-interfaces'
import { writeFileAtomic } from '@mycelium/core-utils'
import { formatSporeBundleJson, isSporeRejectedError, parseSporeBundle, trustedSporeKeys, verifySpore } from '@mycelium/spore-client'
import { parseSporeInput, parseTtl } from './input.js'
import { generateSigningKey, loadPrivateKey, loadPublicKey } from './keys.js'
import { signSpore } from './sign.js'

/** Where the CLI writes; the bin passes process streams, tests capture. */
export interface CliIo {
  out(text: string): void
  err(text: string): void
  now(): number
}

/** Exit codes: 0 ok, 1 verification failed, 2 bad usage or input. */
export const EXIT_OK = 0
export const EXIT_VERIFY_FAILED = 1
export const EXIT_USAGE = 2

async function readSpores(file: string): Promise<SignedSpore[]> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (err) {
    throw new InvalidInputError((err as Error).message, file, { cause: err })
  }
  return parseSporeBundle(bytes, file)
}

async function readSporesIfExists(file: string): Promise<SignedSpore[]> {
  try {
    return await readSpores(file)
  } catch (err) {
    if (isInvalidInputError(err) && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return []
    throw err
  }
}

/** A crash never leaves a half-written bundle or trust file. */
const writeAtomically = (file: string, text: string): Promise<void> => writeFileAtomic(file, text, { mode: 0o644 })

/** The decoded spore of a bundle record, or an InvalidInputError naming the file and record. */
function decodeRecord(s: SignedSpore, file: string, i: number): Spore {
  try {
    return decodeStrict(Spore, s.spore, `${file} spores[${i}]`)
  } catch (err) {
    throw new InvalidInputError(`spores[${i}] is not a spore: ${(err as Error).message}`, file)
  }
}

/**
 * A whole number in [min, max] written in plain decimal digits: "1.5",
 * "1e3", "0x10", "NaN", "Infinity" and anything past 2^53-1 are refused
 * (Number() would round 9007199254740993 to …992 without a word).
 */
export function parseCount(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`)
    }
    return n
  }
}

/** A text file's content; an unreadable file is an InvalidInputError naming it. */
async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new InvalidInputError(`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, file, { cause: err })
  }
}

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('spore')
    .description('Operator tooling for Mycelium spores: keys, trust bundles, signing, verification.')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .option('--debug', 'print the stack of an unexpected error')

  program
    .command('keygen')
    .description('generate an Ed25519 spore-signing key: <label>.key (0600) and <label>.pub.json')
    .requiredOption('--label <label>', 'file name and label of the key')
    .option('--out-dir <dir>', 'directory to write into', '.')
    .action(async (opts: { label: string; outDir: string }) => {
      const key = await generateSigningKey(opts.outDir, opts.label)
      io.out(`key ${key.keyId}\n  private: ${key.privateKeyPath}\n  public:  ${key.publicKeyPath}\n`)
    })

  program
    .command('trust-bundle')
    .description('write a trust bundle (JSON) from public key files')
    .requiredOption('--network <id>', 'network id')
    .requiredOption('--key <file...>', 'spore-signing public key files (<label>.pub.json)')
    .requiredOption('--threshold <k>', 'valid signatures a spore needs (1 to the number of keys)', parseCount(1, 1024))
    .option('--operator-key <file...>', 'operator public key files for emergency commands', [])
    .option('--operator-threshold <k>', 'signatures an emergency command needs', parseCount(1, 1024), 1)
    .option('--ca <pem...>', 'network CA certificate files', [])
    .requiredOption('--out <file>', 'trust bundle file to write')
    .action(
      async (opts: {
        network: string
        key: string[]
        threshold: number
        operatorKey: string[]
        operatorThreshold: number
        ca: string[]
        out: string
      }) => {
        const bundle: TrustBundle = {
          networkId: opts.network,
          caCertificatesPem: await Promise.all(opts.ca.map(readText)),
          sporeKeys: await Promise.all(opts.key.map(loadPublicKey)),
          sporeThreshold: opts.threshold,
          operatorKeys: await Promise.all(opts.operatorKey.map(loadPublicKey)),
          operatorThreshold: opts.operatorKey.length > 0 ? opts.operatorThreshold : 0,
          releaseKeys: [],
          releaseThreshold: 0
        }
        trustedSporeKeys(bundle, opts.network, 'trust bundle') // refuse to write a bundle a node would refuse
        await writeAtomically(opts.out, `${JSON.stringify(TrustBundle.toJSON(bundle), null, 2)}\n`)
        io.out(
          `trust bundle for ${opts.network}: ${bundle.sporeKeys.length} spore keys, threshold ${bundle.sporeThreshold} → ${opts.out}\n`
        )
      }
    )

  program
    .command('sign')
    .description('sign a spore from YAML/JSON into a spore bundle, bumping its sequence')
    .argument('<input>', 'spore description (YAML or JSON)')
    .requiredOption('--key <file...>', 'private signing key files')
    .requiredOption('--out <bundle>', 'spore bundle (JSON) to add the spore to; created if missing')
    .option('--sequence <n>', 'explicit sequence, 1 to 2^53-1 (must exceed the current one)', parseCount(1))
    .action(async (input: string, opts: { key: string[]; out: string; sequence?: number }) => {
      const parsed = parseSporeInput(await readText(input), input, io.now())
      const existing = await readSporesIfExists(opts.out)
      const decoded = existing.map((s, i) => decodeRecord(s, opts.out, i))
      const at = decoded.findIndex((d) => d.name === parsed.spore.name)
      const previous = at >= 0 ? existing[at] : undefined
      const current = at >= 0 ? decoded[at]!.sequence : 0
      const sequence = opts.sequence ?? parsed.sequence ?? current + 1
      if (!Number.isSafeInteger(sequence)) {
        throw new InvalidInputError(`sequence of "${parsed.spore.name}" cannot go above ${Number.MAX_SAFE_INTEGER}`, opts.out)
      }
      if (sequence <= current) {
        throw new InvalidInputError(
          `sequence ${sequence} is not above the current ${current} of "${parsed.spore.name}" (nodes would refuse it as a rollback)`,
          opts.out
        )
      }
      const keys = await Promise.all(opts.key.map(loadPrivateKey))
      const signed = signSpore({ ...parsed.spore, sequence }, keys)
      const next = [...existing.filter((s) => s !== previous), signed]
      await writeAtomically(opts.out, formatSporeBundleJson(next))
      io.out(`signed "${parsed.spore.name}" sequence ${sequence} with ${keys.map((k) => k.keyId).join(', ')} → ${opts.out}\n`)
    })

  program
    .command('verify')
    .description('verify every spore of a bundle as a node would (exit 1 if any is rejected)')
    .argument('<bundle>', 'spore bundle (JSON or binary)')
    .requiredOption('--trust <file>', 'trust bundle (JSON)')
    .option('--network <id>', "network id; default the trust bundle's")
    .option('--clock-slack <duration>', 'accepted clock difference', '30s')
    .addOption(new Option('--at <iso-time>', 'verify as of this time instead of now'))
    .action(async (file: string, opts: { trust: string; network?: string; clockSlack: string; at?: string }) => {
      let bundle: TrustBundle
      try {
        bundle = TrustBundle.fromJSON(JSON.parse(await readText(opts.trust)))
      } catch (err) {
        if (isInvalidInputError(err)) throw err
        throw new InvalidInputError(`not a trust bundle: ${(err as Error).message}`, opts.trust)
      }
      const trust = trustedSporeKeys(bundle, opts.network ?? bundle.networkId, opts.trust)
      const nowMs = opts.at != null ? Date.parse(opts.at) : io.now()
      if (Number.isNaN(nowMs)) throw new InvalidInputError(`"${opts.at}" is not a time`, '--at')
      const clockSlackMs = parseTtl(opts.clockSlack, '--clock-slack')
      let failed = 0
      for (const signed of await readSpores(file)) {
        try {
          const { verified } = verifySpore(signed, { trust, nowMs, clockSlackMs, source: file, markFor: () => undefined })
          io.out(`ok       ${verified.name} sequence ${verified.sequence} (${signed.signatures.length} signatures)\n`)
        } catch (err) {
          if (!isSporeRejectedError(err)) throw err
          failed++
          io.err(`REJECTED ${err.message}\n`)
        }
      }
      if (failed > 0) setExit(EXIT_VERIFY_FAILED)
    })

  program
    .command('print')
    .description('print the spores of a bundle as JSON (signatures by key id)')
    .argument('<bundle>', 'spore bundle (JSON or binary)')
    .action(async (file: string) => {
      const printed = (await readSpores(file)).map((s) => {
        let spore: unknown
        try {
          spore = Spore.toJSON(decodeStrict(Spore, s.spore, file))
        } catch (err) {
          spore = { error: `undecodable spore: ${(err as Error).message}` }
        }
        return { spore, signedBy: s.signatures.map((sig) => sig.keyId) }
      })
      io.out(`${JSON.stringify(printed, null, 2)}\n`)
    })

  return program
}

/** Runs the CLI; resolves to the exit code (never exits the process itself). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let code = EXIT_OK
  const program = buildProgram(io, (c) => (code = c))
  try {
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
    if (isInvalidInputError(err)) {
      io.err(`error: ${err.message}\n`)
      return EXIT_USAGE
    }
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      io.err(`error: ${(err as Error).message} (refusing to overwrite a key)\n`)
      return EXIT_USAGE
    }
    throw err
  }
}
