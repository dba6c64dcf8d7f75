import assert from 'node:assert/strict';

import { parseSyslogLine, resolveYearlessTime, zonedTimeToUtc } from './syslog.js';

/** Parses a line that must be valid and returns its fields. */
function parsed(raw: string, options: Parameters<typeof parseSyslogLine>[1] = {}) {
  const result = parseSyslogLine(raw, options);
  assert.ok(
    result.ok,
    `expected ${JSON.stringify(raw)} to parse, got ${result.ok ? '' : result.reason}`,
  );
  return result.line;
}

function reason(raw: string, options: Parameters<typeof parseSyslogLine>[1] = {}): string {
  const result = parseSyslogLine(raw, options);
  assert.equal(result.ok, false, `expected ${JSON.stringify(raw)} to be rejected`);
  return result.ok ? '' : result.reason;
}

describe('syslog header parser', function () {
  const january = new Date('2027-01-01T00:30:00Z');

  it('splits a classic BSD line into time, host, program, pid and message', function () {
    const line = parsed('Mar  7 09:05:03 gateway sshd[812]: Server listening on 0.0.0.0 port 22.', {
      year: 2026,
    });

    assert.equal(line.timestamp.toISOString(), '2026-03-07T09:05:03.000Z');
    assert.equal(line.yearInferred, true);
    assert.equal(line.hostname, 'gateway');
    assert.equal(line.program, 'sshd');
    assert.equal(line.pid, 812);
    assert.equal(line.message, 'Server listening on 0.0.0.0 port 22.');
  });

  it('reads a two-digit day as well as a space-padded one', function () {
    assert.equal(
      parsed('Mar 17 09:05:03 gateway sshd[1]: x', { year: 2026 }).timestamp.getUTCDate(),
      17,
    );
    assert.equal(
      parsed('Mar  7 09:05:03 gateway sshd[1]: x', { year: 2026 }).timestamp.getUTCDate(),
      7,
    );
  });

  it('keeps the PAM module of an old-style tag apart from the program', function () {
    const line = parsed('Jun  3 11:00:01 mail sshd(pam_unix)[3101]: check pass; user unknown', {
      year: 2026,
    });

    assert.equal(line.program, 'sshd');
    assert.equal(line.tagModule, 'pam_unix');
    assert.equal(line.pid, 3101);
  });

  it('accepts a tag without a pid', function () {
    const line = parsed('Jun  3 11:00:01 mail su: (to root) carol on pts/2', { year: 2026 });

    assert.equal(line.program, 'su');
    assert.equal(line.pid, undefined);
    assert.equal(line.message, '(to root) carol on pts/2');
  });

  it('reads the RFC 3339 form with its offset and no year inference', function () {
    const line = parsed(
      '2026-05-02T08:15:00.250+02:00 web-1 sudo: pam_unix(sudo:session): session closed for user root',
    );

    assert.equal(line.timestamp.toISOString(), '2026-05-02T06:15:00.250Z');
    assert.equal(line.yearInferred, false);
    assert.equal(line.hostname, 'web-1');
    assert.equal(line.program, 'sudo');
  });

  it('decodes a leading priority', function () {
    assert.equal(parsed('<38>Mar  7 09:05:03 gateway sshd[1]: x', { year: 2026 }).priority, 38);
    assert.match(reason('<200>Mar  7 09:05:03 gateway sshd[1]: x', { year: 2026 }), /priority/);
  });

  it('puts a December line read on new-year night in the year before', function () {
    const december = parsed('Dec 31 23:59:58 gateway sshd[1]: x', { now: january });
    const newYear = parsed('Jan  1 00:00:12 gateway sshd[1]: x', { now: january });

    assert.equal(december.timestamp.toISOString(), '2026-12-31T23:59:58.000Z');
    assert.equal(newYear.timestamp.toISOString(), '2027-01-01T00:00:12.000Z');
    assert.ok(december.timestamp < newYear.timestamp);
  });

  it('allows one day of clock skew', function () {
    const now = new Date('2026-06-10T12:00:00Z');

    assert.equal(
      parsed('Jun 11 11:00:00 gateway sshd[1]: x', { now }).timestamp.getUTCFullYear(),
      2026,
    );
    assert.equal(
      parsed('Jun 12 13:00:00 gateway sshd[1]: x', { now }).timestamp.getUTCFullYear(),
      2025,
    );
  });

  it('moves Feb 29 to latest leap year', function () {
    const result = resolveYearlessTime(
      { month: 1, day: 29, hour: 8, minute: 0, second: 0 },
      { now: new Date('2027-03-01T00:00:00Z') },
    );

    assert.ok(result.ok);
    assert.equal(result.ok && result.timestamp.toISOString(), '2024-02-29T08:00:00.000Z');
  });

  it('rejects Feb 29 in an explicit year that has none, naming the date', function () {
    assert.match(
      reason('Feb 29 08:00:00 gateway sshd[1]: x', { year: 2026 }),
      /Feb 29 in year 2026/,
    );
  });

  it('converts year-less wall-clock time from the given zone', function () {
    const summer = parsed('Jul  1 12:00:00 gateway sshd[1]: x', {
      year: 2026,
      timeZone: 'Europe/Berlin',
    });
    const winter = zonedTimeToUtc(
      { year: 2026, month: 0, day: 15, hour: 12, minute: 0, second: 0 },
      'Europe/Berlin',
    );

    assert.equal(summer.timestamp.toISOString(), '2026-07-01T10:00:00.000Z');
    assert.equal(winter.toISOString(), '2026-01-15T11:00:00.000Z');
  });

  it('rejects lines that are not syslog, with a reason', function () {
    assert.match(reason(''), /empty line/);
    assert.match(reason('hello world'), /not a syslog line/);
    assert.match(
      reason('Foo 12 10:00:00 gateway sshd[1]: x', { year: 2026 }),
      /invalid month "Foo"/,
    );
    assert.match(
      reason('Jan 32 10:00:00 gateway sshd[1]: x', { year: 2026 }),
      /invalid time Jan 32/,
    );
    assert.match(reason('Jan 12 24:00:00 gateway sshd[1]: x', { year: 2026 }), /invalid time/);
    assert.match(reason('Jan 12 10:00:00 gateway', { year: 2026 }), /without a message/);
  });
});
