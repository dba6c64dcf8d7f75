import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { readRecoverySettings } from './settings';

const base = { SMTP_HOST: '127.0.0.1', SMTP_FROM: 'appliance@example.test' };

describe('recovery settings', function () {
  let dir: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-settings-'));
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function passwordFile(mode: number): string {
    const file = path.join(dir, `password-${mode.toString(8)}`);
    fs.writeFileSync(file, 'smtp-secret\n', { mode });
    fs.chmodSync(file, mode);
    return file;
  }

  it('is off without settings', function () {
    assert.equal(readRecoverySettings({}), undefined);
  });

  it('reads defaults for a loopback relay', function () {
    const settings = readRecoverySettings(base);

    assert.equal(settings?.smtp.port, 587);
    assert.equal(settings?.smtp.secure, false);
    assert.equal(settings?.smtp.requireTls, false);
    assert.equal(settings?.smtp.auth, undefined);
    assert.equal(settings?.tokenMinutes, 15);
    assert.equal(settings?.consoleUrl, undefined);
  });

  it('requires STARTTLS for a remote server', function () {
    const settings = readRecoverySettings({ ...base, SMTP_HOST: 'mail.example.test' });

    assert.equal(settings?.smtp.requireTls, true);
  });

  it('uses port 465 for SMTP_SECURE', function () {
    const settings = readRecoverySettings({ ...base, SMTP_SECURE: 'true' });

    assert.equal(settings?.smtp.port, 465);
    assert.equal(settings?.smtp.secure, true);
    assert.equal(settings?.smtp.requireTls, false);
  });

  it('rejects other settings without SMTP_HOST', function () {
    assert.throws(() => readRecoverySettings({ RECOVERY_TOKEN_MINUTES: '5' }), /SMTP_HOST/);
  });

  it('rejects a missing SMTP_FROM', function () {
    assert.throws(() => readRecoverySettings({ SMTP_HOST: '127.0.0.1' }), /SMTP_FROM/);
  });

  it('rejects a bad SMTP_SECURE', function () {
    assert.throws(() => readRecoverySettings({ ...base, SMTP_SECURE: 'yes' }), /SMTP_SECURE/);
  });

  it('rejects a bad RECOVERY_TOKEN_MINUTES', function () {
    assert.throws(
      () => readRecoverySettings({ ...base, RECOVERY_TOKEN_MINUTES: '0' }),
      /RECOVERY_TOKEN_MINUTES/,
    );
  });

  it('reads the password from a 0600 file', function () {
    const settings = readRecoverySettings({
      ...base,
      SMTP_USER: 'mailer',
      SMTP_PASSWORD_FILE: passwordFile(0o600),
    });

    assert.deepEqual(settings?.smtp.auth, { user: 'mailer', password: 'smtp-secret' });
  });

  it('rejects a password file others can read', function () {
    assert.throws(
      () =>
        readRecoverySettings({
          ...base,
          SMTP_USER: 'mailer',
          SMTP_PASSWORD_FILE: passwordFile(0o644),
        }),
      /chmod 600/,
    );
  });

  it('rejects SMTP_USER without a password file', function () {
    assert.throws(
      () => readRecoverySettings({ ...base, SMTP_USER: 'mailer' }),
      /SMTP_PASSWORD_FILE/,
    );
  });

  it('rejects a plain-http console URL', function () {
    assert.throws(
      () =>
        readRecoverySettings({ ...base, RECOVERY_CONSOLE_URL: 'http://appliance.example.test/' }),
      /RECOVERY_CONSOLE_URL/,
    );
  });

  it('reads an https console URL', function () {
    const settings = readRecoverySettings({
      ...base,
      RECOVERY_CONSOLE_URL: 'https://appliance.example.test/console/',
    });

    assert.equal(settings?.consoleUrl?.href, 'https://appliance.example.test/console/');
  });
});
