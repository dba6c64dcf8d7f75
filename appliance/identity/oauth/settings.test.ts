import assert from 'node:assert/strict';

import { defaultOAuthSettings, OAuthSettingsError, readOAuthSettings } from './settings';

describe('OAuth settings', function () {
  it('defaults to five-minute access tokens', function () {
    assert.deepEqual(readOAuthSettings({}), defaultOAuthSettings);
    assert.equal(defaultOAuthSettings.accessTokenTtlSeconds, 300);
  });

  it('reads every OAUTH_* setting', function () {
    const settings = readOAuthSettings({
      OAUTH_ISSUER: 'https://appliance.example',
      OAUTH_AUDIENCE: 'prompt-api',
      OAUTH_ACCESS_TOKEN_TTL_SECONDS: '120',
      OAUTH_REFRESH_TOKEN_TTL_SECONDS: '3600',
      OAUTH_REFRESH_FAMILY_TTL_SECONDS: '7200',
    });
    assert.deepEqual(settings, {
      issuer: 'https://appliance.example',
      audience: 'prompt-api',
      accessTokenTtlSeconds: 120,
      refreshTokenTtlSeconds: 3600,
      refreshFamilyTtlSeconds: 7200,
    });
  });

  it('rejects bad values naming the setting', function () {
    const cases: [Record<string, string>, RegExp][] = [
      [{ OAUTH_ACCESS_TOKEN_TTL_SECONDS: '0' }, /OAUTH_ACCESS_TOKEN_TTL_SECONDS/],
      [{ OAUTH_ACCESS_TOKEN_TTL_SECONDS: '5m' }, /OAUTH_ACCESS_TOKEN_TTL_SECONDS/],
      [{ OAUTH_ACCESS_TOKEN_TTL_SECONDS: '7200' }, /maximum of 3600/],
      [
        { OAUTH_REFRESH_TOKEN_TTL_SECONDS: '7200', OAUTH_REFRESH_FAMILY_TTL_SECONDS: '3600' },
        /OAUTH_REFRESH_TOKEN_TTL_SECONDS/,
      ],
      [{ OAUTH_ISSUER: ' padded ' }, /OAUTH_ISSUER/],
    ];
    for (const [env, message] of cases) {
      assert.throws(() => readOAuthSettings(env), OAuthSettingsError);
      assert.throws(() => readOAuthSettings(env), message);
    }
  });
});
