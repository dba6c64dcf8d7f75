import assert from 'node:assert/strict';

import { startTestAppliance, type TestAppliance } from '../testing/harness';

describe('HTTP problem details @integration', function () {
  let test: TestAppliance;

  before(async function () {
    test = await startTestAppliance({ env: { APPLIANCE_MAX_BODY_BYTES: '4096' } });
  });

  after(async function () {
    await test?.close();
  });

  it('answers malformed JSON with 400', async function () {
    const response = await test
      .anonymous()
      .request('POST', '/auth/login', '{"username": "admin",', {
        'content-type': 'application/json',
      });

    assert.equal(response.status, 400);
    assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
    assert.match(response.body.type, /malformed_json$/);
  });

  it('answers an oversized body with 413', async function () {
    const response = await test
      .anonymous()
      .post('/auth/login', { username: 'admin', password: 'x'.repeat(8192) });

    assert.equal(response.status, 413);
    assert.match(response.body.detail, /limit of 4096 bytes/);
  });

  it('answers a form body with 415', async function () {
    const response = await test.anonymous().request('POST', '/auth/login', 'username=admin', {
      'content-type': 'application/x-www-form-urlencoded',
    });

    assert.equal(response.status, 415);
  });

  it('names each missing field', async function () {
    const response = await test.anonymous().post('/auth/login', {});

    assert.equal(response.status, 400);
    assert.deepEqual(response.body.errors.map((error: { field: string }) => error.field).sort(), [
      'password',
      'username',
    ]);
    assert.equal(response.body.instance, '/api/v1/auth/login');
  });

  it('answers an unknown API route with a 404 problem', async function () {
    const admin = await test.admin();

    const response = await admin.get('/no-such-thing');

    assert.equal(response.status, 404);
    assert.match(response.body.type, /not_found$/);
  });

  it('sends security headers', async function () {
    const response = await test.anonymous().get('/health');

    assert.equal(response.status, 200);
    assert.match(String(response.headers['content-security-policy']), /default-src 'self'/);
    assert.match(String(response.headers['strict-transport-security']), /max-age=31536000/);
    assert.equal(response.headers['x-powered-by'], undefined);
  });
});
