import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { auditKeyLabel, masterKeyLabel } from './appliance-keys';
import { HsmError } from './errors';
import { openKeyProvider } from './pkcs11-key-provider';
import { signingKeyLabel } from './signing-key';
import {
  createCapturingLogger,
  createTestTokenDir,
  runPkcs11Tool,
  type TestTokenDir,
} from './test-support';
import { ensureToken } from './token-setup';

/** Returns the block that pkcs11-tool --list-objects prints for the object labelled `label` of `kind`. */
function objectBlock(listing: string, kind: string, label: string): string {
  const blocks = listing.split(/\n(?=\S)/);
  const block = blocks.find(
    (candidate) =>
      candidate.startsWith(kind) && new RegExp(`label:\\s+${label}\\n`).test(`${candidate}\n`),
  );
  assert.ok(block, `pkcs11-tool lists no ${kind} labelled ${label}:\n${listing}`);
  return block;
}

function fileMode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

describe('ensureToken @integration', () => {
  let token: TestTokenDir;

  beforeEach(() => {
    token = createTestTokenDir('setup-test');
  });

  afterEach(() => {
    token.remove();
  });

  it('creates configuration, PIN files, token and keys', () => {
    const result = ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });

    assert.equal(result.softhsmConfigCreated, true);
    assert.match(
      fs.readFileSync(token.hsm.softhsmConf, 'utf8'),
      /^directories\.tokendir = .+\/tokens$/m,
    );
    assert.deepEqual(
      [...result.pinFilesCreated].sort(),
      [token.hsm.pinFile, token.hsm.soPinFile].sort(),
    );
    assert.equal(result.createdToken, true);
    assert.deepEqual(result.createdKeys, [masterKeyLabel, auditKeyLabel, signingKeyLabel]);
    assert.match(result.masterKeyId, /^[0-9a-f]{32}$/);
    assert.match(result.auditKeyId, /^[0-9a-f]{32}$/);
    assert.match(result.signingKeyId, /^[0-9a-f]{32}$/);
    assert.equal(
      result.masterKeyUri,
      'pkcs11:token=setup-test;object=vault-master;type=secret-key',
    );
    assert.equal(
      result.signingKeyUri,
      'pkcs11:token=setup-test;object=appliance-signing;type=private-key',
    );
  });

  it('writes PIN files 0600 in a 0700 directory', () => {
    ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });

    assert.equal(fileMode(token.hsm.pinFile), 0o600);
    assert.equal(fileMode(token.hsm.soPinFile), 0o600);
    assert.equal(fileMode(path.dirname(token.hsm.pinFile)), 0o700);
    assert.match(fs.readFileSync(token.hsm.pinFile, 'utf8'), /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(
      fs.readFileSync(token.hsm.pinFile, 'utf8'),
      fs.readFileSync(token.hsm.soPinFile, 'utf8'),
    );
  });

  it('changes nothing on a second run', () => {
    const first = ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });
    const pinBefore = fs.readFileSync(token.hsm.pinFile, 'utf8');
    const configBefore = fs.readFileSync(token.hsm.softhsmConf, 'utf8');

    const second = ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });

    assert.equal(second.softhsmConfigCreated, false);
    assert.deepEqual(second.pinFilesCreated, []);
    assert.equal(second.pinFileModesFixed, false);
    assert.equal(second.createdToken, false);
    assert.deepEqual(second.createdKeys, []);
    assert.equal(second.tokenSerial, first.tokenSerial);
    assert.equal(second.masterKeyId, first.masterKeyId);
    assert.equal(second.auditKeyId, first.auditKeyId);
    assert.equal(second.signingKeyId, first.signingKeyId);
    assert.equal(fs.readFileSync(token.hsm.pinFile, 'utf8'), pinBefore);
    assert.equal(fs.readFileSync(token.hsm.softhsmConf, 'utf8'), configBefore);

    const listing = runPkcs11Tool(token.hsm, ['--login', '--pin', pinBefore, '--list-objects']);
    assert.equal(listing.match(/label:\s+vault-master\n/g)?.length, 1);
    assert.equal(listing.match(/label:\s+audit-hmac\n/g)?.length, 1);
  });

  it('tightens a PIN file mode loosened by hand', () => {
    ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });
    fs.chmodSync(token.hsm.pinFile, 0o644);

    const result = ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });

    assert.equal(result.pinFileModesFixed, true);
    assert.equal(fileMode(token.hsm.pinFile), 0o600);
  });

  it('never logs a PIN', () => {
    const capture = createCapturingLogger();
    ensureToken({ hsm: token.hsm }, { logger: capture.logger });
    const provider = openKeyProvider({ hsm: token.hsm }, { logger: capture.logger });
    provider.close();

    const output = capture.output();
    const userPin = fs.readFileSync(token.hsm.pinFile, 'utf8');
    const soPin = fs.readFileSync(token.hsm.soPinFile, 'utf8');
    assert.match(output, /HSM token initialised/);
    assert.match(output, /HSM key provider opened/);
    assert.ok(!output.includes(userPin), 'the user PIN appears in the log');
    assert.ok(!output.includes(soPin), 'the SO PIN appears in the log');
  });

  it('keeps the master key sensitive and never extractable', () => {
    ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });
    const pin = fs.readFileSync(token.hsm.pinFile, 'utf8');

    const listing = runPkcs11Tool(token.hsm, ['--login', '--pin', pin, '--list-objects']);

    for (const [kind, label] of [
      ['Secret Key Object; AES length 32', masterKeyLabel],
      ['Secret Key Object; Generic secret length 32', auditKeyLabel],
      ['Private Key Object; EC', signingKeyLabel],
    ]) {
      const access = /Access:\s+(.*)/.exec(objectBlock(listing, kind, label))?.[1] ?? '';
      const flags = access.split(',').map((flag) => flag.trim());
      assert.ok(flags.includes('sensitive'), `${label} is not sensitive: ${access}`);
      assert.ok(flags.includes('never extractable'), `${label} was extractable: ${access}`);
      assert.ok(!flags.includes('extractable'), `${label} is extractable: ${access}`);
    }
    assert.match(
      objectBlock(listing, 'Secret Key Object; AES length 32', masterKeyLabel),
      /Usage:\s+wrap, unwrap\n/,
    );
  });

  it('creates the SoftHSM configuration at a path outside the data directory', () => {
    const hsm = {
      ...token.hsm,
      softhsmConf: path.join(token.dir, 'elsewhere', 'conf', 'softhsm2.conf'),
    };

    const result = ensureToken({ hsm }, { logger: createCapturingLogger().logger });

    assert.equal(result.softhsmConfigCreated, true);
    assert.ok(fs.existsSync(path.join(token.dir, 'elsewhere', 'conf', 'tokens')));
  });

  it('writes nothing under /etc', () => {
    const hsm = { ...token.hsm, softhsmConf: '/etc/appliance-hsm-test-missing/softhsm2.conf' };

    assert.throws(
      () => ensureToken({ hsm }, { logger: createCapturingLogger().logger }),
      (error: unknown) =>
        error instanceof HsmError &&
        error.code === 'hsm_unavailable' &&
        error.message.includes('/etc/appliance-hsm-test-missing/softhsm2.conf'),
    );
    assert.equal(fs.existsSync('/etc/appliance-hsm-test-missing'), false);
    assert.equal(fs.existsSync(token.hsm.pinFile), false);
  });

  it('rejects a token label longer than 32 bytes', () => {
    const hsm = { ...token.hsm, tokenLabel: 'x'.repeat(33) };

    assert.throws(
      () => ensureToken({ hsm }, { logger: createCapturingLogger().logger }),
      (error: unknown) =>
        error instanceof HsmError &&
        error.code === 'hsm_invalid_input' &&
        error.message.includes('HSM_TOKEN_LABEL'),
    );
    assert.equal(fs.existsSync(token.hsm.softhsmConf), false);
  });

  it('rejects a wrong user PIN of an existing token', () => {
    ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });
    fs.writeFileSync(token.hsm.pinFile, 'not-the-pin-of-this-token', { mode: 0o600 });

    assert.throws(
      () => ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger }),
      (error: unknown) => error instanceof HsmError && error.code === 'hsm_pin_incorrect',
    );
  });
});
