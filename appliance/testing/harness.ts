import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { initialAdminPasswordFile } from '../identity/service';
import type { Role } from '../identity/permissions';
import { loadConfig } from '../platform/config';
import { startAppliance, type RunningAppliance } from '../runtime';
import { ApiClient } from './api-client';

/** The first admin's password once the harness has replaced the one-time password. */
export const adminTestPassword = 'admin-test-password-1';

/** The search node the test run started (scripts/test.sh sets TEST_SEARCH_URL). */
export const testSearchUrl = process.env.TEST_SEARCH_URL ?? 'http://127.0.0.1:9250';

export interface TestAppliance {
  appliance: RunningAppliance;
  dataDir: string;
  /** A client with no session. */
  anonymous(): ApiClient;
  /** The first admin, signed in with a password of its own (the one-time password already changed). */
  admin(): Promise<ApiClient>;
  /** Creates a user with `role` through the API and returns a signed-in client for it. */
  userWithRole(role: Role): Promise<{ client: ApiClient; username: string; password: string }>;
  close(): Promise<void>;
}

/**
 * Starts a whole appliance (real SoftHSM token, SQLite file, HTTPS server on
 * 127.0.0.1 with a free port) in a fresh temporary data directory. With
 * `search: true` it also connects to the test run's OpenSearch node under a
 * unique index prefix.
 */
export async function startTestAppliance(
  options: { search?: boolean; env?: Record<string, string> } = {},
): Promise<TestAppliance> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-test-'));
  const config = loadConfig({
    APPLIANCE_DATA_DIR: dataDir,
    ...sharedTokenEnv(),
    SEARCH_URL: testSearchUrl,
    SEARCH_INDEX_PREFIX: `test-${crypto.randomBytes(4).toString('hex')}`,
    ...options.env,
  });
  const appliance = await startAppliance(config, { port: 0, search: options.search ?? false });
  const ca = fs.readFileSync(path.join(config.tlsDir, 'appliance.crt'));
  const newClient = () => new ApiClient(appliance.url, ca);

  let adminClient: ApiClient | undefined;
  const admin = async () => {
    if (adminClient) return adminClient;

    const client = newClient();
    const passwordFile = path.join(config.secretsDir, initialAdminPasswordFile);
    if (fs.existsSync(passwordFile)) {
      const oneTimePassword = fs.readFileSync(passwordFile, 'utf8').trim();
      await expectStatus(
        client.post('/auth/login', { username: 'admin', password: oneTimePassword }),
        200,
      );
      await expectStatus(
        client.post('/auth/password', {
          currentPassword: oneTimePassword,
          newPassword: adminTestPassword,
        }),
        204,
      );
    } else {
      // A test already replaced the one-time password with this one.
      await expectStatus(
        client.post('/auth/login', { username: 'admin', password: adminTestPassword }),
        200,
      );
    }
    adminClient = client;
    return client;
  };

  return {
    appliance,
    dataDir,
    anonymous: newClient,
    admin,
    async userWithRole(role) {
      const username = `${role}-${crypto.randomBytes(3).toString('hex')}`;
      const initial = `initial-${crypto.randomBytes(8).toString('hex')}`;
      const password = `password-${crypto.randomBytes(8).toString('hex')}`;
      await expectStatus(
        (await admin()).post('/users', { username, password: initial, role }),
        201,
      );

      const client = newClient();
      await expectStatus(client.post('/auth/login', { username, password: initial }), 200);
      await expectStatus(
        client.post('/auth/password', { currentPassword: initial, newPassword: password }),
        204,
      );
      return { client, username, password };
    },
    async close() {
      await appliance.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * One SoftHSM token for the whole test process: the PKCS#11 module reads its
 * configuration once per process, so every test appliance uses the same one.
 */
export function sharedTokenEnv(): Record<string, string> {
  const dir = path.join(os.tmpdir(), `appliance-test-hsm-${process.pid}`);
  return {
    SOFTHSM2_CONF: path.join(dir, 'softhsm', 'softhsm2.conf'),
    HSM_PIN_FILE: path.join(dir, 'secrets', 'hsm-user-pin'),
    HSM_SO_PIN_FILE: path.join(dir, 'secrets', 'hsm-so-pin'),
  };
}

async function expectStatus(pending: Promise<{ status: number; body: unknown }>, status: number) {
  const response = await pending;
  if (response.status !== status) {
    throw new Error(
      `expected HTTP ${status}, got ${response.status}: ${JSON.stringify(response.body)}`,
    );
  }
  return response;
}
