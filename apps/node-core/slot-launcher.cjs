#!/usr/bin/env node
// node-core slot launcher: the systemd unit's ExecStart. It is never replaced by an update
// in place (only through the same A/B path) and needs nothing but Node's built-ins.
//
//   node slot-launcher.cjs [--prefix <dir>] [--] <node-core arguments...>
//
// <prefix>/slots/{a,b}/ each hold one extracted release (node-core.cjs inside);
// <prefix>/boot.json is the boot record (format: packages/self-update/README.md). The
// launcher chooses the slot from the record (`decideBoot`, pure), writes the record back
// before it starts the child (a trial boot is counted before it can crash), runs the
// child with NODE_CORE_SLOT / NODE_CORE_SLOT_PREFIX set and an IPC channel (the child stops
// when the launcher dies), and then:
//   - the child exits with RESTART_EXIT_CODE (75: it asked to restart, e.g. into a new slot)
//     or a trial child exits in any way: count it, decide again, start again;
//   - any other exit: the launcher exits with the child's code (systemd restarts the unit);
//   - a trial still uncommitted at its window's end: marked rolled back, the child is
//     stopped (SIGTERM, then SIGKILL) and the previous slot boots.
// Every record write is atomic (temp file, fsync, rename, fsync of the directory) and the
// previous copy is kept as boot.json.prev: SIGKILL at any point leaves a record (or its
// previous copy, or none: then the slot that holds a release) that boots.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawn } = require('node:child_process')

/** The exit code with which node-core asks to be started again (EX_TEMPFAIL). */
const RESTART_EXIT_CODE = 75
const SLOTS = ['a', 'b']
const RECORD_FORMAT = 1
/** Defaults of the trial policy: N exits within M ms roll back; boots also bound launcher deaths. */
const DEFAULT_POLICY = { maxTrialExits: 3, trialExitWindowMs: 300_000, maxTrialBoots: 6 }
/**
 * The unit's environment may change the trial policy (and node-core's trial window, which
 * the launcher checks too so a bad value is refused before anything boots): name → [policy
 * field, lowest, highest]. Out of range or not an integer: the launcher refuses to start
 * (exit EX_CONFIG, 78) naming the variable — a policy that silently fell back to its
 * default would not be the one the operator wrote.
 */
const POLICY_ENV = {
  NODE_CORE_TRIAL_MAX_EXITS: ['maxTrialExits', 1, 100],
  NODE_CORE_TRIAL_EXIT_WINDOW_MS: ['trialExitWindowMs', 1000, 86_400_000],
  NODE_CORE_TRIAL_MAX_BOOTS: ['maxTrialBoots', 1, 1000],
  NODE_CORE_UPDATE_TRIAL_WINDOW_MS: [null, 1000, 86_400_000]
}
const EX_CONFIG = 78

/** The trial policy from the environment (pure); throws an Error naming the variable and the range when a value is bad. */
function policyFromEnv(env) {
  const policy = { ...DEFAULT_POLICY }
  for (const [name, [field, lo, hi]] of Object.entries(POLICY_ENV)) {
    const text = env[name]
    if (text == null || text === '') continue
    const n = Number(text)
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < lo || n > hi)
      throw new Error(`${name}="${text}" is not an integer from ${lo} to ${hi} (the unit's environment)`)
    if (field != null) policy[field] = n
  }
  return policy
}

/** Grace between SIGTERM and SIGKILL when a trial window passes. */
const STOP_GRACE_MS = 45_000

const other = (slot) => (slot === 'a' ? 'b' : 'a')

/**
 * Rolls a trial back (pure): the previous slot is active again and `last` says why, not yet
 * reported (the previous version reports the failed update once it is MANAGED).
 */
function rollback(record, reason, nowMs) {
  const t = record.trial
  return {
    ...record,
    active: t.previous,
    trial: undefined,
    last: {
      outcome: 'rolled-back',
      slot: t.slot,
      version: t.version,
      commandId: t.commandId,
      reason,
      atMs: nowMs,
      reported: false
    }
  }
}

/**
 * Which slot boots (pure). `present` says which slots hold a release. Returns the slot (null
 * when none holds one), the record to write before starting it, and why.
 */
function decideBoot(record, present, nowMs, policy = DEFAULT_POLICY) {
  const usable = SLOTS.filter((s) => present[s])
  if (record == null) {
    const slot = usable[0] ?? null
    return { slot, record: slot == null ? undefined : { format: RECORD_FORMAT, active: slot }, reason: 'no boot record' }
  }
  let r = record
  const t = r.trial
  if (t != null) {
    const exits = (t.exits ?? []).filter((at) => at > nowMs - policy.trialExitWindowMs)
    let failure
    if (t.failure) failure = t.failure
    else if (!present[t.slot]) failure = `slot ${t.slot} holds no release`
    else if (exits.length >= policy.maxTrialExits)
      failure = `version ${t.version} exited ${exits.length} times within ${Math.round(policy.trialExitWindowMs / 1000)} s`
    else if ((t.boots ?? 0) >= policy.maxTrialBoots) failure = `version ${t.version} was started ${t.boots} times without a commit`
    else if (nowMs >= t.startedAtMs + t.windowMs)
      failure = `version ${t.version} did not reach MANAGED and HEALTHY within ${Math.round(t.windowMs / 1000)} s`
    if (failure == null) {
      return { slot: t.slot, record: { ...r, trial: { ...t, boots: (t.boots ?? 0) + 1 } }, reason: `trial of ${t.version}` }
    }
    r = rollback(r, failure, nowMs)
    if (present[r.active]) return { slot: r.active, record: r, reason: `rolled back: ${failure}` }
  }
  if (present[r.active]) return { slot: r.active, record: r, reason: t != null ? 'rolled back' : 'active slot' }
  const fallback = present[other(r.active)] ? other(r.active) : null
  if (fallback == null) return { slot: null, record: r, reason: 'no slot holds a release' }
  return { slot: fallback, record: { ...r, active: fallback }, reason: `slot ${r.active} holds no release` }
}

/** A trial child exited (pure): counted against the trial. Other exits change nothing. */
function recordExit(record, slot, nowMs) {
  const t = record?.trial
  if (t == null || t.slot !== slot) return record
  return { ...record, trial: { ...t, exits: [...(t.exits ?? []), nowMs] } }
}

// ---- files ----

const recordPath = (prefix) => path.join(prefix, 'boot.json')

function encode(record) {
  const body = JSON.stringify(record)
  return JSON.stringify({ record, sha256: crypto.createHash('sha256').update(body).digest('hex') }) + '\n'
}

function decode(text) {
  const parsed = JSON.parse(text)
  const body = JSON.stringify(parsed.record)
  if (parsed.sha256 !== crypto.createHash('sha256').update(body).digest('hex')) throw new Error('checksum mismatch')
  if (parsed.record == null || !SLOTS.includes(parsed.record.active)) throw new Error('no active slot')
  return parsed.record
}

/** The record, else its previous copy, else undefined (never throws: a bad record must not stop a boot). */
function readRecord(prefix, warn = () => undefined) {
  for (const file of [recordPath(prefix), `${recordPath(prefix)}.prev`]) {
    let text
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      continue
    }
    try {
      return decode(text)
    } catch (err) {
      warn(`${file}: ${err.message}; trying its previous copy`)
    }
  }
  return undefined
}

function fsyncDir(dir) {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`
  const fd = fs.openSync(tmp, 'w', 0o644)
  try {
    fs.writeFileSync(fd, text)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(tmp, file)
  fsyncDir(path.dirname(file))
}

/** Writes the record atomically, keeping the one it replaces as boot.json.prev. */
function writeRecord(prefix, record) {
  const file = recordPath(prefix)
  let old
  try {
    old = fs.readFileSync(file, 'utf8')
    decode(old)
  } catch {
    old = undefined
  }
  if (old != null) writeAtomic(`${file}.prev`, old)
  writeAtomic(file, encode(record))
}

function presentSlots(prefix) {
  return Object.fromEntries(SLOTS.map((s) => [s, fs.existsSync(path.join(prefix, 'slots', s, 'node-core.cjs'))]))
}

// ---- the process ----

function parseArgs(argv, env) {
  let prefix = env.NODE_CORE_PREFIX || '/opt/mycelium'
  const rest = []
  let i = 0
  for (; i < argv.length && rest.length === 0; i++) {
    if (argv[i] === '--prefix') prefix = argv[++i]
    else if (argv[i] === '--') {
      i++
      break
    } else rest.push(argv[i])
  }
  rest.push(...argv.slice(i))
  return { prefix: path.resolve(prefix), args: rest }
}

function log(level, msg, fields = {}) {
  process.stderr.write(
    `${JSON.stringify({ level, component: 'slot-launcher', message: msg, ...fields, timestamp: new Date().toISOString() })}\n`
  )
}

async function main() {
  const { prefix, args } = parseArgs(process.argv.slice(2), process.env)
  let policy
  try {
    policy = policyFromEnv(process.env)
  } catch (err) {
    log('error', `refusing to start: ${err.message}`)
    return EX_CONFIG
  }
  let stopping = false
  let child
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      stopping = true
      if (child != null && child.exitCode == null) child.kill(sig)
      else process.exit(0)
    })
  }
  for (;;) {
    const now = Date.now()
    const decision = decideBoot(
      readRecord(prefix, (m) => log('warn', m)),
      presentSlots(prefix),
      now,
      policy
    )
    if (decision.slot == null) {
      log('error', 'no slot holds a release: nothing to boot', { prefix })
      return 1
    }
    writeRecord(prefix, decision.record)
    const trial = decision.record.trial
    log('info', 'booting slot', { slot: decision.slot, reason: decision.reason, ...(trial != null ? { policy } : {}) })
    const entry = path.join(prefix, 'slots', decision.slot, 'node-core.cjs')
    child = spawn(process.execPath, [entry, ...args], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, NODE_CORE_SLOT: decision.slot, NODE_CORE_SLOT_PREFIX: prefix }
    })
    let windowTimer
    let killTimer
    if (trial != null) {
      windowTimer = setTimeout(
        () => {
          const r = readRecord(prefix)
          if (r?.trial == null || r.trial.slot !== decision.slot) return // committed (or rolled back) meanwhile
          const reason = `version ${r.trial.version} did not reach MANAGED and HEALTHY within ${Math.round(r.trial.windowMs / 1000)} s`
          log('warn', 'trial window passed: rolling back', { slot: decision.slot, reason })
          writeRecord(prefix, rollback(r, reason, Date.now()))
          child.kill('SIGTERM')
          killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
        },
        Math.max(0, trial.startedAtMs + trial.windowMs - Date.now())
      )
    }
    const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])))
    clearTimeout(windowTimer)
    clearTimeout(killTimer)
    const after = readRecord(prefix)
    const stillTrial = after?.trial != null && after.trial.slot === decision.slot
    if (stillTrial) writeRecord(prefix, recordExit(after, decision.slot, Date.now()))
    log(stopping ? 'info' : 'warn', 'node-core exited', { slot: decision.slot, code, signal })
    if (stopping) return code ?? 0
    const rolledBack = trial != null && !stillTrial && after?.active !== decision.slot
    if (code === RESTART_EXIT_CODE || stillTrial || rolledBack) continue
    return code ?? 1
  }
}

module.exports = {
  decideBoot,
  recordExit,
  rollback,
  readRecord,
  writeRecord,
  presentSlots,
  policyFromEnv,
  DEFAULT_POLICY,
  RESTART_EXIT_CODE
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      log('error', `launcher failed: ${err.stack ?? err}`)
      process.exit(1)
    }
  )
}
