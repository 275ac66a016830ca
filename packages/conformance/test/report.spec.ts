import { CONFORMANCE_CHECKS, exitCodeOf, formatJUnit, formatReport, type ConformanceReport } from '@mycelium/conformance'

const report = (failed: number): ConformanceReport => ({
  results: [
    { name: 'handoff.commit', proves: 'commits are confirmed', status: 'passed', detail: '', durationMs: 12 },
    {
      name: 'handoff.refuse-unknown',
      proves: 'unknown <handoffs> & "others"',
      status: 'failed',
      detail: 'was CONFIRMED <&> \u0007bell',
      durationMs: 1500
    },
    { name: 'spores.watch-changes', proves: 'changes arrive', status: 'skipped', detail: 'no trigger', durationMs: 0 }
  ],
  passed: 1,
  failed,
  skipped: 1,
  startedAt: new Date('2026-01-02T03:04:05Z'),
  durationMs: 1512
})

describe('report', () => {
  it('exit code is the number of failures, capped at 100', () => {
    expect(exitCodeOf({ failed: 0 })).toBe(0)
    expect(exitCodeOf({ failed: 3 })).toBe(3)
    expect(exitCodeOf({ failed: 250 })).toBe(100)
  })

  it('JUnit XML has one testcase per check with failures and skips, escaped', () => {
    const xml = formatJUnit(report(1))
    expect(xml).toContain(
      '<testsuite name="mycelium-conformance" tests="3" failures="1" skipped="1" errors="0" time="1.512" timestamp="2026-01-02T03:04:05.000Z">'
    )
    expect(xml).toContain('<testcase classname="mycelium.conformance.handoff" name="handoff.refuse-unknown" time="1.500">')
    expect(xml).toContain('<failure message="was CONFIRMED &lt;&amp;&gt; \ufffdbell" type="CheckFailed">')
    expect(xml).toContain('<system-out>unknown &lt;handoffs&gt; &amp; &quot;others&quot;\nwas CONFIRMED')
    expect(xml).toMatch(/name="spores\.watch-changes"[^>]*>\n\s*<skipped message="no trigger"\/>/)
    // Well-formed enough for a CI parser: every opened testcase closes, no raw control character.
    expect(xml.match(/<testcase /g)).toHaveLength(3)
    expect(xml.match(/<\/testcase>/g)).toHaveLength(3)
    // eslint-disable-next-line no-control-regex
    expect(xml).not.toMatch(/[\u0000-\u0008]/)
  })

  it('the text report names what failed and what each non-passing check proves', () => {
    const text = formatReport(report(1))
    expect(text).toMatch(/^FAIL {2}handoff\.refuse-unknown +1\.5s {2}was CONFIRMED/m)
    expect(text).toContain('      proves: changes arrive')
    expect(text).toMatch(/1 passed, 1 failed, 1 skipped in 1\.5 s — failed: handoff\.refuse-unknown\n$/)
    const problems = formatReport(report(1), { passed: false })
    expect(problems).not.toContain('handoff.commit ')
    expect(problems).toMatch(/^FAIL {2}handoff\.refuse-unknown/)
  })

  it('every check has a unique stable name and says what it proves', () => {
    const names = CONFORMANCE_CHECKS.map((c) => c.name)
    expect(new Set(names).size).toBe(names.length)
    for (const c of CONFORMANCE_CHECKS) {
      expect(c.name).toMatch(/^[a-z]+\.[a-z-]+$/)
      expect(c.proves).toMatch(/^[A-Z].{40,}\.$/)
    }
  })
})
