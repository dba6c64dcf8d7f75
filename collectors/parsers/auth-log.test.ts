import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { EcsEvent } from '../ecs.js';
import { parseAuthLogLine } from './auth-log.js';

const fixture = fileURLToPath(new URL('../fixtures/auth.log', import.meta.url));
// Real sshd and Linux logs (loghub) kept outside the project; read, never copied.
const loghubDir = '/work/shared/data/loghub';

/** The fixture was written on new-year night 2027 (UTC). */
const now = new Date('2027-01-01T00:30:00Z');

/** Parses a line that must be valid and returns its single event. */
function single(raw: string): EcsEvent {
  const result = parseAuthLogLine(raw, { now });
  assert.ok(
    result.ok,
    `expected ${JSON.stringify(raw)} to parse, got ${result.ok ? '' : result.reason}`,
  );
  assert.equal(result.events.length, 1);
  return result.events[0]!;
}

/** Splits a file on LF only, so a CRLF line keeps its CR as a file reader without readline would. */
function fileLines(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

describe('auth log parser', function () {
  const lines = fileLines(fixture);
  const byText = (needle: string) => {
    const line = lines.find((candidate) => candidate.includes(needle));
    assert.ok(line, `fixture has no line with ${JSON.stringify(needle)}`);
    return line;
  };

  it('maps a failed password for an invalid user to a failed ssh_login', function () {
    const event = single(byText('Failed password for invalid user deploy'));

    assert.equal(event.event.action, 'ssh_login');
    assert.equal(event.event.outcome, 'failure');
    assert.deepEqual(event.event.category, ['authentication']);
    assert.equal(event.user?.name, 'deploy');
    assert.equal(event.source?.ip, '203.0.113.7');
    assert.equal(event.source?.port, 50122);
    assert.equal(event.system?.auth?.ssh?.method, 'password');
    assert.equal(event.system?.auth?.ssh?.invalid_user, true);
    assert.equal(event.host?.hostname, 'bastion');
    assert.equal(event.process?.name, 'sshd');
    assert.equal(event.process?.pid, 4101);
    assert.equal(event['@timestamp'], '2026-12-31T23:58:05.000Z');
  });

  it('maps an accepted public key to a successful ssh_login with its signature', function () {
    const event = single(byText('Accepted publickey'));

    assert.equal(event.event.action, 'ssh_login');
    assert.equal(event.event.outcome, 'success');
    assert.equal(event.user?.name, 'alice');
    assert.equal(event.source?.ip, '192.0.2.10');
    assert.equal(event.system?.auth?.ssh?.method, 'publickey');
    assert.match(event.system?.auth?.ssh?.signature ?? '', /^ED25519 SHA256:/);
    assert.equal(event['@timestamp'], '2027-01-01T00:00:12.000Z');
  });

  it('maps "Invalid user" and the preauth close of an authenticating user', function () {
    const invalid = single(byText('Invalid user admin'));
    assert.equal(invalid.event.action, 'ssh_invalid_user');
    assert.equal(invalid.event.outcome, 'failure');
    assert.equal(invalid.user?.name, 'admin');
    assert.equal(invalid.source?.ip, '203.0.113.9');

    const closed = single(byText('Connection closed by authenticating user root'));
    assert.equal(closed.event.action, 'ssh_connection_closed');
    assert.deepEqual(closed.event.type, ['connection', 'end']);
    assert.equal(closed.user?.name, 'root');
    assert.equal(closed.source?.ip, '198.51.100.23');
    assert.equal(closed.source?.port, 41000);
  });

  it('maps PAM failures with rhost to source.ip', function () {
    const event = single(byText('authentication failure; logname='));

    assert.equal(event.event.action, 'pam_auth_failure');
    assert.equal(event.source?.ip, '203.0.113.7');
    assert.equal(event.system?.auth?.pam?.module, 'pam_unix');
    assert.equal(event.system?.auth?.pam?.service, 'sshd');
  });

  it('maps a sudo command and a sudo password failure', function () {
    const command = single(byText('alice : TTY=pts/0'));
    assert.equal(command.event.action, 'sudo_command');
    assert.equal(command.event.outcome, 'success');
    assert.equal(command.user?.name, 'alice');
    assert.equal(command.user?.effective?.name, 'root');
    assert.equal(command.process?.command_line, '/usr/bin/systemctl restart promptbank');
    assert.equal(command.process?.working_directory, '/home/alice');

    const failure = single(byText('3 incorrect password attempts'));
    assert.equal(failure.event.action, 'sudo_auth_failure');
    assert.equal(failure.event.outcome, 'failure');
    assert.equal(failure.event.reason, '3 incorrect password attempts');
    assert.equal(failure.user?.name, 'bob');
  });

  it('maps su sessions, successful and failed', function () {
    const success = single(byText('su: (to root) alice'));
    assert.equal(success.event.action, 'su_session');
    assert.equal(success.event.outcome, 'success');
    assert.equal(success.user?.name, 'alice');
    assert.equal(success.user?.effective?.name, 'root');

    const failure = single(byText('FAILED SU (to root) bob'));
    assert.equal(failure.event.outcome, 'failure');
    assert.equal(failure.user?.name, 'bob');
  });

  it('maps the session opened by sudo to the user who started it', function () {
    const event = single(byText('pam_unix(sudo:session): session opened'));

    assert.equal(event.event.action, 'session_opened');
    assert.equal(event.user?.name, 'alice');
    assert.equal(event.user?.effective?.name, 'root');
  });

  it('expands "message repeated N times" into N tagged events', function () {
    const result = parseAuthLogLine(byText('message repeated 2 times'), { now });
    assert.ok(result.ok);

    assert.equal(result.events.length, 2);
    for (const event of result.events) {
      assert.equal(event.event.action, 'ssh_login');
      assert.equal(event.event.outcome, 'failure');
      assert.equal(event.user?.name, 'deploy');
      assert.deepEqual(event.tags, ['syslog_repeated']);
    }
  });

  it('caps the expansion of a repeat line and tags it as truncated', function () {
    const raw =
      'Jan  1 00:09:00 bastion sshd[9]: message repeated 5000 times: [ Failed password for root from 198.51.100.4 port 22 ssh2]';
    const result = parseAuthLogLine(raw, { now, maxRepeatExpansion: 3 });
    assert.ok(result.ok);

    assert.equal(result.events.length, 3);
    assert.deepEqual(result.events[0]!.tags, ['syslog_repeated', 'syslog_repeat_truncated']);
  });

  it('strips CRLF line ends from the event and its original', function () {
    const crlf = byText('su: (to root) alice');
    assert.ok(crlf.endsWith('\r'), 'the fixture line should end in CR');

    const event = single(crlf);
    assert.equal(event.message, '(to root) alice on pts/0');
    assert.equal(event.event.original, crlf.slice(0, -1));
  });

  it('keeps lines of other programs as events without an action', function () {
    const event = single(byText('kernel:'));

    assert.equal(event.event.action, undefined);
    assert.equal(event.event.outcome, 'unknown');
    assert.equal(event.process?.name, 'kernel');
  });

  it('rejects each malformed fixture line with a reason, and parses every other line', function () {
    const rejected = lines
      .map((line) => ({ line, result: parseAuthLogLine(line, { now }) }))
      .filter(({ result }) => !result.ok)
      .map(({ line, result }) => ({
        line: line.replace(/\r$/, ''),
        reason: result.ok ? '' : result.reason,
      }));

    assert.deepEqual(
      rejected.map((entry) => entry.line),
      [
        'this line has no syslog header',
        'Foo 12 10:00:00 bastion sshd[4200]: a month that does not exist',
        'Jan 32 10:00:00 bastion sshd[4231]: a day that does not exist',
        'Jan  1 00:07:05 bastion',
      ],
    );
    assert.match(rejected[0]!.reason, /not a syslog line/);
    assert.match(rejected[1]!.reason, /invalid month/);
    assert.match(rejected[2]!.reason, /invalid time/);
    assert.match(rejected[3]!.reason, /without a message/);
  });

  it('orders the fixture events across the new-year boundary', function () {
    const stamps = lines.flatMap((line) => {
      const result = parseAuthLogLine(line, { now });
      return result.ok ? result.events.map((event) => event['@timestamp']) : [];
    });

    assert.deepEqual([...stamps].sort(), stamps);
    assert.equal(stamps[0], '2026-12-31T23:58:01.000Z');
    assert.equal(stamps[stamps.length - 1], '2027-01-01T00:08:00.000Z');
  });

  describe('real logs (loghub, read in place)', function () {
    for (const name of ['OpenSSH_2k.log', 'Linux_2k.log']) {
      it(`parses every line of ${name} and classifies every sshd authentication line`, function () {
        const file = `${loghubDir}/${name}`;
        if (!fs.existsSync(file)) this.skip();

        const real = fileLines(file);
        let events = 0;
        const unclassifiedAuth: string[] = [];
        for (const line of real) {
          const result = parseAuthLogLine(line, { now: new Date('2026-12-31T00:00:00Z') });
          assert.ok(result.ok, `line rejected: ${result.ok ? '' : result.reason}`);

          for (const event of result.events) {
            events += 1;
            const authLine = /Failed password|Accepted |Invalid user|authentication failure/.test(
              event.message ?? '',
            );
            if (authLine && event.event.action === undefined)
              unclassifiedAuth.push(event.message ?? '');
            if (event.source?.ip !== undefined) assert.ok(event.source.ip.length >= 7);
          }
        }

        assert.ok(events >= real.length);
        assert.deepEqual(unclassifiedAuth, []);
      });
    }
  });
});
