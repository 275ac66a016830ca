import type { CheckResult, ConformanceReport } from './types.js'

/** Highest exit code the CLI gives for failures (exit code = failed checks, capped). */
export const MAX_FAILURE_EXIT_CODE = 100

/** The process exit code of a report: the number of failed checks, capped at 100. */
export const exitCodeOf = (report: Pick<ConformanceReport, 'failed'>): number => Math.min(report.failed, MAX_FAILURE_EXIT_CODE)

const MARK = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP' } as const

/** One line per check as it finishes. */
export function formatResultLine(r: CheckResult): string {
  return `${MARK[r.status]}  ${r.name.padEnd(34)} ${(r.durationMs / 1000).toFixed(1).padStart(5)}s${r.detail !== '' ? `  ${r.detail}` : ''}`
}

/**
 * The report for a person: every check (or, with `passed: false`, only those
 * that did not pass, e.g. after progress lines), what each non-passing one
 * proves, and the totals.
 */
export function formatReport(report: ConformanceReport, options: { passed?: boolean } = {}): string {
  const shown = options.passed === false ? report.results.filter((r) => r.status !== 'passed') : report.results
  const lines = shown.map((r) => {
    const line = formatResultLine(r)
    return r.status === 'passed' ? line : `${line}\n      proves: ${r.proves}`
  })
  lines.push(
    '',
    `${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped in ${(report.durationMs / 1000).toFixed(1)} s` +
      (report.failed > 0
        ? ` — failed: ${report.results
            .filter((r) => r.status === 'failed')
            .map((r) => r.name)
            .join(', ')}`
        : '')
  )
  return `${lines.join('\n')}\n`
}

const xml = (text: string): string =>
  text
    // XML 1.0 cannot carry most control characters at all, escaped or not.
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')

/**
 * JUnit XML (the Surefire dialect CI systems read): one testsuite, one
 * testcase per check, classname "mycelium.conformance.<area>", failures and
 * skips with their reason, what the check proves in system-out.
 */
export function formatJUnit(report: ConformanceReport, suiteName = 'mycelium-conformance'): string {
  const seconds = (ms: number): string => (ms / 1000).toFixed(3)
  const cases = report.results.map((r) => {
    const area = r.name.split('.')[0] ?? r.name
    const open = `    <testcase classname="mycelium.conformance.${xml(area)}" name="${xml(r.name)}" time="${seconds(r.durationMs)}">`
    const body =
      r.status === 'failed'
        ? `      <failure message="${xml(r.detail)}" type="CheckFailed">${xml(r.detail)}</failure>\n`
        : r.status === 'skipped'
          ? `      <skipped message="${xml(r.detail)}"/>\n`
          : ''
    return `${open}\n${body}      <system-out>${xml(`${r.proves}${r.detail !== '' ? `\n${r.detail}` : ''}`)}</system-out>\n    </testcase>`
  })
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xml(suiteName)}" tests="${report.results.length}" failures="${report.failed}" skipped="${report.skipped}" errors="0" time="${seconds(report.durationMs)}">`,
    `  <testsuite name="${xml(suiteName)}" tests="${report.results.length}" failures="${report.failed}" skipped="${report.skipped}" errors="0" time="${seconds(report.durationMs)}" timestamp="${report.startedAt.toISOString()}">`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    ''
  ].join('\n')
}
