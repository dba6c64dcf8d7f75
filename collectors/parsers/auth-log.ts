import { isIP } from 'node:net';

import type { EcsEvent, EventOutcome } from '../ecs.js';
import { parseSyslogLine, type SyslogLine, type SyslogTimeOptions } from './syslog.js';

/**
 * Parser for Linux authentication logs (`/var/log/auth.log`, `/var/log/secure`)
 * written by sshd, sudo, su and PAM, mapped to ECS with `event.dataset`
 * `system.auth`.
 *
 * Every syslog line becomes at least one event. Lines from these programs that
 * no rule below recognises, and lines from other programs (ftpd, kernel, ...),
 * keep the common fields and get `event.outcome: unknown` with no action.
 * Only a line without a syslog header is rejected.
 *
 * "message repeated N times: [ text ]" (rsyslog's repeat reduction, meaning
 * text occurred N more times) is expanded into N events parsed from text, so
 * counting detections such as failed-login thresholds see every attempt. They
 * carry the tag `syslog_repeated`; at most `maxRepeatExpansion` are produced,
 * and a line above that limit also gets the tag `syslog_repeat_truncated`.
 */

export interface AuthLogOptions extends SyslogTimeOptions {
  /** Path stored in `log.file.path`. */
  filePath?: string;
  /** Upper bound on events produced from one "message repeated" line. Default 1000. */
  maxRepeatExpansion?: number;
}

export type AuthLogParseResult = { ok: true; events: EcsEvent[] } | { ok: false; reason: string };

/** Fields a recognised message adds to the common ones. */
interface Classification {
  action: string;
  category: string[];
  type: string[];
  outcome: EventOutcome;
  reason?: string;
  userName?: string;
  effectiveUserName?: string;
  source?: { host: string; port?: number };
  tags?: string[];
  extra?: (event: EcsEvent) => void;
}

type Rule = { pattern: RegExp; classify: (match: RegExpExecArray) => Classification };

const sshPrograms = new Set(['sshd', 'sshd-session']);
const repeatPattern = /^message repeated (\d+) times?: \[ ?(.*)\]$/s;

const authInfo = { category: ['authentication'], type: ['info'] };
const connectionEnd = { category: ['network'], type: ['connection', 'end'] };
const breakInTag = 'possible_break_in_attempt';

/** Parses one auth log line into ECS events, or returns why it is not a syslog line. */
export function parseAuthLogLine(input: string, options: AuthLogOptions = {}): AuthLogParseResult {
  // Line terminators are not part of the event (loghub's files use CRLF).
  const raw = input.replace(/\r?\n$/, '').replace(/\r$/, '');
  const parsed = parseSyslogLine(raw, options);
  if (!parsed.ok) return parsed;
  const line = parsed.line;

  const repeat = repeatPattern.exec(line.message);
  if (!repeat) return { ok: true, events: [buildEvent(raw, line, line.message, options)] };

  const count = Number(repeat[1]);
  const limit = options.maxRepeatExpansion ?? 1000;
  const events: EcsEvent[] = [];
  for (let i = 0; i < Math.min(count, limit); i++) {
    const event = buildEvent(raw, line, repeat[2]!, options);
    event.tags = [...(event.tags ?? []), 'syslog_repeated'];
    if (count > limit) event.tags.push('syslog_repeat_truncated');
    events.push(event);
  }
  return { ok: true, events };
}

function buildEvent(
  raw: string,
  line: SyslogLine,
  text: string,
  options: AuthLogOptions,
): EcsEvent {
  const event: EcsEvent = {
    '@timestamp': line.timestamp.toISOString(),
    message: text,
    event: {
      kind: 'event',
      outcome: 'unknown',
      dataset: 'system.auth',
      module: 'system',
      original: raw,
    },
    host: { hostname: line.hostname },
  };

  if (line.yearInferred) event.event.timezone = options.timeZone ?? 'UTC';
  if (line.program !== undefined) {
    event.process = { name: line.program };
    if (line.pid !== undefined) event.process.pid = line.pid;
  }
  if (options.filePath !== undefined) event.log = { file: { path: options.filePath } };
  if (line.priority !== undefined) {
    event.log = {
      ...event.log,
      syslog: {
        priority: line.priority,
        facility: { code: line.priority >> 3 },
        severity: { code: line.priority & 7 },
      },
    };
  }

  const classification = classify(line, text);
  if (classification) applyClassification(event, classification);
  return event;
}

function applyClassification(event: EcsEvent, c: Classification): void {
  event.event.action = c.action;
  event.event.category = c.category;
  event.event.type = c.type;
  event.event.outcome = c.outcome;
  if (c.reason) event.event.reason = c.reason;

  if (c.userName) event.user = { name: c.userName };
  if (c.effectiveUserName) event.user = { ...event.user, effective: { name: c.effectiveUserName } };
  if (c.source) {
    const source = sourceFields(c.source.host, c.source.port);
    if (source) event.source = source;
  }
  if (c.tags) event.tags = [...c.tags];
  c.extra?.(event);
}

/** `source.ip` for an address, `source.domain` for a host name (PAM's rhost may be either). */
function sourceFields(host: string, port?: number): EcsEvent['source'] | undefined {
  if (host === '' || host === 'UNKNOWN') return undefined;

  const source: NonNullable<EcsEvent['source']> = isIP(host) ? { ip: host } : { domain: host };
  source.address = host;
  if (port !== undefined && port >= 0 && port <= 65535) source.port = port;
  return source;
}

function classify(line: SyslogLine, text: string): Classification | undefined {
  const program = line.program ?? '';
  const pam = pamRules(line, text);
  if (pam) return pam;

  if (sshPrograms.has(program)) return firstMatch(sshRules, text);
  if (program === 'sudo') return firstMatch(sudoRules, text);
  if (program === 'su') return firstMatch(suRules, text);
  return undefined;
}

function firstMatch(rules: Rule[], text: string): Classification | undefined {
  for (const rule of rules) {
    const match = rule.pattern.exec(text);
    if (match) return rule.classify(match);
  }
  return undefined;
}

/** Returns the user name as logged, or undefined when sshd logged an empty one. */
function userName(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function port(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}

function connectionClosed(
  user: string | undefined,
  host: string,
  sourcePort: string | undefined,
): Classification {
  return {
    action: 'ssh_connection_closed',
    ...connectionEnd,
    outcome: 'unknown',
    userName: userName(user),
    source: { host, port: port(sourcePort) },
  };
}

// sshd. User names are attacker-chosen and may contain spaces or " from ",
// so each pattern is anchored at the end and takes the address from the right.
const sshRules: Rule[] = [
  {
    pattern: /^Accepted (\S+) for (.*) from (\S+) port (\d+)(?: ssh2)?(?:: (.*))?$/s,
    classify: (m) => ({
      action: 'ssh_login',
      category: ['authentication', 'session'],
      type: ['start'],
      outcome: 'success',
      userName: userName(m[2]),
      source: { host: m[3]!, port: port(m[4]) },
      extra: (event) => {
        event.system = { auth: { ssh: { method: m[1]!, ...(m[5] ? { signature: m[5] } : {}) } } };
      },
    }),
  },
  {
    pattern: /^Failed (\S+) for (invalid user )?(.*) from (\S+) port (\d+)(?: ssh2)?$/s,
    classify: (m) => ({
      action: 'ssh_login',
      ...authInfo,
      outcome: 'failure',
      userName: userName(m[3]),
      source: { host: m[4]!, port: port(m[5]) },
      extra: (event) => {
        event.system = {
          auth: { ssh: { method: m[1]!, ...(m[2] ? { invalid_user: true } : {}) } },
        };
      },
    }),
  },
  {
    pattern: /^Invalid user (.*) from (\S+)(?: port (\d+))?$/s,
    classify: (m) => ({
      action: 'ssh_invalid_user',
      ...authInfo,
      outcome: 'failure',
      userName: userName(m[1]),
      source: { host: m[2]!, port: port(m[3]) },
    }),
  },
  {
    pattern: /^input_userauth_request: invalid user (.*?)(?: \[preauth\])?$/s,
    classify: (m) => ({
      action: 'ssh_userauth_invalid_user',
      ...authInfo,
      outcome: 'failure',
      userName: userName(m[1]),
    }),
  },
  {
    // Two rules, with and without the port: with an optional port, a greedy
    // user name would swallow "root 198.51.100.23 port" and leave the port
    // number as the address.
    pattern:
      /^Connection closed by (?:(?:authenticating|invalid) user (.*) )?(\S+) port (\d+)(?: \[preauth\])?$/s,
    classify: (m) => connectionClosed(m[1], m[2]!, m[3]),
  },
  {
    pattern:
      /^Connection closed by (?:(?:authenticating|invalid) user (.*) )?([^\s[\]]+)(?: \[preauth\])?$/s,
    classify: (m) => connectionClosed(m[1], m[2]!, undefined),
  },
  {
    pattern:
      /^(?:error: )?Received disconnect from (\S+?)(?: port (\d+))?:\s*(\d+): (.*?)(?: \[preauth\])?$/s,
    classify: (m) => ({
      action: 'ssh_disconnect',
      ...connectionEnd,
      outcome: 'unknown',
      reason: m[4]!.trim(),
      source: { host: m[1]!, port: port(m[2]) },
    }),
  },
  {
    pattern:
      /^Disconnected from (?:(?:authenticating |invalid )?user (.*) )?(\S+) port (\d+)(?: \[preauth\])?$/s,
    classify: (m) => ({
      action: 'ssh_disconnect',
      ...connectionEnd,
      outcome: 'unknown',
      userName: userName(m[1]),
      source: { host: m[2]!, port: port(m[3]) },
    }),
  },
  {
    pattern: /^Disconnecting: Too many authentication failures(?: for (.*?))?(?: \[preauth\])?$/s,
    classify: (m) => ({
      action: 'ssh_too_many_auth_failures',
      ...authInfo,
      outcome: 'failure',
      reason: 'Too many authentication failures',
      userName: userName(m[1]),
    }),
  },
  {
    pattern:
      /^Disconnecting (?:authenticating |invalid )?user (.*) (\S+) port (\d+): Too many authentication failures(?: \[preauth\])?$/s,
    classify: (m) => ({
      action: 'ssh_too_many_auth_failures',
      ...authInfo,
      outcome: 'failure',
      reason: 'Too many authentication failures',
      userName: userName(m[1]),
      source: { host: m[2]!, port: port(m[3]) },
    }),
  },
  {
    pattern:
      /^reverse mapping checking getaddrinfo for (\S+) \[(\S+)\] failed(?: - POSSIBLE BREAK-IN ATTEMPT!)?$/s,
    classify: (m) => ({
      action: 'ssh_reverse_mapping_failed',
      category: ['network'],
      type: ['info'],
      outcome: 'failure',
      source: { host: m[2]! },
      tags: [breakInTag],
      extra: (event) => {
        // The name the address claimed is more useful than the address twice.
        event.source = { ...event.source, domain: m[1]! };
      },
    }),
  },
  {
    pattern:
      /^Address (\S+) maps to (\S+), but this does not map back to the address(?: - POSSIBLE BREAK-IN ATTEMPT!)?$/s,
    classify: (m) => ({
      action: 'ssh_address_mismatch',
      category: ['network'],
      type: ['info'],
      outcome: 'failure',
      source: { host: m[1]! },
      tags: [breakInTag],
      extra: (event) => {
        event.source = { ...event.source, domain: m[2]! };
      },
    }),
  },
  {
    pattern: /^Did not receive identification string from (\S+)(?: port (\d+))?$/s,
    classify: (m) => ({
      action: 'ssh_no_identification',
      category: ['network'],
      type: ['connection'],
      outcome: 'failure',
      source: { host: m[1]!, port: port(m[2]) },
    }),
  },
  {
    pattern: /^PAM (\d+) more authentication failures?; (.*)$/s,
    classify: (m) => {
      const fields = pamFields(m[2]!);
      return {
        action: 'pam_auth_failures_summary',
        ...authInfo,
        outcome: 'failure',
        userName: userName(fields.user),
        source: fields.rhost ? { host: fields.rhost } : undefined,
        extra: (event) => {
          event.system = { auth: { pam: { failures: Number(m[1]) } } };
        },
      };
    },
  },
  {
    pattern: /^PAM service\((\S+)\) ignoring max retries; (\d+) > (\d+)$/s,
    classify: (m) => ({
      action: 'pam_max_retries_exceeded',
      ...authInfo,
      outcome: 'failure',
      reason: `${m[2]} attempts, maximum ${m[3]}`,
      extra: (event) => {
        event.system = { auth: { pam: { service: m[1]! } } };
      },
    }),
  },
];

// sudo pads the user name with spaces; a rejected command has a reason
// ("user NOT in sudoers", "3 incorrect password attempts") before TTY=.
const sudoRules: Rule[] = [
  {
    pattern:
      /^\s*(\S+) : (?:(.*?) ; )?TTY=(\S+) ; PWD=(.*?) ; USER=(\S+)(?: ; GROUP=\S+)?(?: ; TSID=\S+)?(?: ; ENV=.*?)? ; COMMAND=(.*)$/s,
    classify: (m) => {
      const reason = m[2]?.trim();
      const passwordFailure = reason !== undefined && /incorrect password attempt/.test(reason);
      return {
        action: passwordFailure ? 'sudo_auth_failure' : 'sudo_command',
        category: passwordFailure ? ['authentication'] : ['process'],
        type: reason ? ['info'] : ['start'],
        outcome: reason ? 'failure' : 'success',
        reason,
        userName: m[1],
        effectiveUserName: m[5],
        extra: (event) => {
          event.process = { ...event.process, command_line: m[6]!, working_directory: m[4]! };
          event.system = { auth: { sudo: { tty: m[3]! } } };
        },
      };
    },
  },
];

const suRules: Rule[] = [
  {
    pattern: /^(Successful|FAILED) su for (\S+) by (\S+)$/s,
    classify: (m) => suSession(m[1] === 'Successful', m[3]!, m[2]!),
  },
  {
    pattern: /^(FAILED SU )?\(to (\S+)\) (\S+) on (\S+)$/s,
    classify: (m) => suSession(m[1] === undefined, m[3]!, m[2]!),
  },
  {
    // util-linux and shadow su: "+ pts/0 alice:root" or "- pts/0 alice:root".
    pattern: /^([+-]) (\S+) ([^:\s]+):(\S+)$/s,
    classify: (m) => suSession(m[1] === '+', m[3]!, m[4]!),
  },
  {
    pattern: /^pam_authenticate: (.*)$/s,
    classify: (m) => ({ ...suSession(false, undefined, undefined), reason: m[1]!.trim() }),
  },
];

function suSession(
  success: boolean,
  user: string | undefined,
  target: string | undefined,
): Classification {
  return {
    action: 'su_session',
    category: ['authentication', 'session'],
    type: success ? ['start'] : ['info'],
    outcome: success ? 'success' : 'failure',
    userName: user,
    effectiveUserName: target,
  };
}

/** Splits PAM's `key=value` list; values may be empty (`ruser= rhost=...`). */
function pamFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of text.matchAll(/(\w+)=(\S*)/g)) fields[match[1]!] = match[2]!;
  return fields;
}

/**
 * pam_unix messages look the same under every program. Newer builds write
 * `pam_unix(sshd:auth): text`; older ones put the module in the tag,
 * `sshd(pam_unix)[123]: text`.
 */
function pamRules(line: SyslogLine, text: string): Classification | undefined {
  let module = line.tagModule;
  let service: string | undefined = line.program;
  let body = text;

  const prefixed = /^(pam_\w+)\(([^:)]+):(\w+)\): (.*)$/s.exec(text);
  if (prefixed) {
    module = prefixed[1];
    service = prefixed[2];
    body = prefixed[4]!;
  }
  if (module === undefined) return undefined;

  const pam = { module, ...(service ? { service } : {}) };
  const withPam = (c: Classification, extraPam: Record<string, string> = {}): Classification => ({
    ...c,
    extra: (event) => {
      event.system = { auth: { pam: { ...pam, ...extraPam } } };
    },
  });

  const failure = /^authentication failure; (.*)$/s.exec(body);
  if (failure) {
    const fields = pamFields(failure[1]!);
    return withPam(
      {
        action: 'pam_auth_failure',
        ...authInfo,
        outcome: 'failure',
        userName: userName(fields.user),
        source: fields.rhost ? { host: fields.rhost } : undefined,
      },
      fields.tty ? { tty: fields.tty } : {},
    );
  }

  if (/^check pass; user unknown$/.test(body)) {
    return withPam({
      action: 'pam_user_unknown',
      ...authInfo,
      outcome: 'failure',
      reason: 'user unknown',
    });
  }

  // "session opened for user root(uid=0) by alice(uid=1000)" (newer) or
  // "session opened for user news by (uid=0)" (older). The account after
  // "by" started the session; when it has no name, the session user did.
  const opened = /^session opened for user (\S+?)(?:\(uid=\d+\))? by (\S*?)\(uid=\d+\)$/s.exec(
    body,
  );
  if (opened) {
    const starter = userName(opened[2]?.replace(/^LOGIN$/, ''));
    return withPam({
      action: 'session_opened',
      category: ['session'],
      type: ['start'],
      outcome: 'success',
      userName: starter ?? opened[1],
      effectiveUserName: starter ? opened[1] : undefined,
    });
  }

  const closed = /^session closed for user (\S+)$/s.exec(body);
  if (closed) {
    return withPam({
      action: 'session_closed',
      category: ['session'],
      type: ['end'],
      outcome: 'success',
      userName: closed[1],
    });
  }

  return undefined;
}
