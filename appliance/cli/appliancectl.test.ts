import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
  sharedTokenEnv,
  startTestAppliance,
  testSearchUrl,
  type TestAppliance,
} from '../testing/harness';
import { runAppliancectl as appliancectl } from '../testing/appliancectl';
import { exitCodes } from './exit-codes';

describe('appliancectl @integration', function () {
  let test: TestAppliance;
  let env: Record<string, string>;

  before(async function () {
    test = await startTestAppliance({ search: true });
    const port = new URL(test.appliance.url).port;
    env = {
      ...sharedTokenEnv(),
      APPLIANCE_DATA_DIR: test.dataDir,
      APPLIANCE_PORT: port,
      SEARCH_URL: testSearchUrl,
      SEARCH_INDEX_PREFIX: test.appliance.config.search.indexPrefix,
    };
  });

  after(async function () {
    await test?.close();
  });

  it('prints help with every command and exit 0', async function () {
    const run = await appliancectl(['--help'], env);

    assert.equal(run.code, exitCodes.ok);
    for (const command of ['start', 'status', 'ingest', 'alerts', 'verify-audit']) {
      assert.match(run.stdout, new RegExp(`\\b${command}\\b`));
    }
    assert.match(run.stdout, /Exit codes:/);
  });

  it('rejects an unknown command with exit 2', async function () {
    const run = await appliancectl(['frobnicate'], env);

    assert.equal(run.code, exitCodes.usage);
    assert.match(run.stderr, /unknown command/);
  });

  it('reports a healthy appliance with status', async function () {
    const run = await appliancectl(['status', '--json'], env);

    assert.equal(run.code, exitCodes.ok, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.status, 'ok');
    assert.equal(report.checks.hsm.status, 'up');
    assert.equal(report.checks.database.status, 'up');
    assert.equal(report.checks.search.status, 'up');
  });

  it('reports an appliance that is not running with exit 3', async function () {
    const run = await appliancectl(['status'], { ...env, APPLIANCE_PORT: '1' });

    assert.equal(run.code, exitCodes.unavailable);
    assert.match(run.stderr, /does not respond/);
  });

  it('ingests an auth log from a file and from stdin', async function () {
    const log = [
      'Dec  1 10:00:01 bastion sshd[100]: Failed password for root from 198.51.100.7 port 40001 ssh2',
      'Dec  1 10:00:03 bastion sshd[100]: Failed password for root from 198.51.100.7 port 40002 ssh2',
      'not a syslog line at all',
      'Dec  1 10:00:09 bastion sshd[101]: Accepted publickey for deploy from 198.51.100.8 port 40100 ssh2: ED25519 SHA256:abc',
    ].join('\n');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ingest-')), 'auth.log');
    fs.writeFileSync(file, `${log}\n`);

    const fromFile = await appliancectl(['ingest', '--year', '2026', '--json', file], env);
    assert.equal(fromFile.code, exitCodes.partial, fromFile.stderr);
    const report = JSON.parse(fromFile.stdout);
    assert.equal(report.lines, 4);
    assert.equal(report.events, 3);
    assert.equal(report.rejected, 1);
    assert.equal(report.pending, 0);
    const rejected = fs.readFileSync(report.rejectedFile, 'utf8');
    assert.match(rejected, /not a syslog line at all/);

    const fromStdin = await appliancectl(
      ['ingest', '--year', '2026', '--json', '-'],
      env,
      `${log.split('\n')[0]}\n`,
    );
    assert.equal(fromStdin.code, exitCodes.ok, fromStdin.stderr);
    assert.equal(JSON.parse(fromStdin.stdout).events, 1);
  });

  it('rejects a missing log file and a bad year with exit 2', async function () {
    const missing = await appliancectl(['ingest', '/nonexistent/auth.log'], env);
    assert.equal(missing.code, exitCodes.usage);
    assert.match(missing.stderr, /cannot read \/nonexistent\/auth\.log: ENOENT/);

    const badYear = await appliancectl(['ingest', '--year', 'last', '/nonexistent/auth.log'], env);
    assert.equal(badYear.code, exitCodes.usage);
    assert.match(badYear.stderr, /--year must be a whole number/);
  });

  it('lists alerts as JSON and rejects an unknown severity', async function () {
    const listed = await appliancectl(['alerts', '--json'], env);
    assert.equal(listed.code, exitCodes.ok, listed.stderr);
    assert.ok(Array.isArray(JSON.parse(listed.stdout)));

    const bad = await appliancectl(['alerts', '--severity', 'urgent'], env);
    assert.equal(bad.code, exitCodes.usage);
    assert.match(bad.stderr, /Allowed choices are low, medium, high, critical/);
  });

  it('verifies the audit chain and names the first edited row', async function () {
    await (await test.admin()).get('/users');
    const intact = await appliancectl(['verify-audit'], env);
    assert.equal(intact.code, exitCodes.ok, intact.stderr);
    assert.match(intact.stdout, /audit chain intact/);

    await test.appliance.database.sequelize.query(
      "UPDATE audit_records SET source_ip = '203.0.113.66' WHERE seq = 2",
    );

    const broken = await appliancectl(['verify-audit', '--json'], env);
    assert.equal(broken.code, exitCodes.checkFailed, `${broken.stdout}\n${broken.stderr}`);
    assert.equal(JSON.parse(broken.stdout).firstBroken.seq, 2);
  });
});
