import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { Attribute, Change, Client } from 'ldapts';

/** Debian's OpenLDAP install locations (packages slapd and ldap-utils, see scripts/install-deps.sh). */
const slapdBinary = '/usr/sbin/slapd';
const slapaddBinary = '/usr/sbin/slapadd';
const schemaDir = '/etc/ldap/schema';
const moduleDir = '/usr/lib/ldap';

export const testBaseDn = 'dc=example,dc=test';
export const testServiceDn = `cn=appliance-reader,${testBaseDn}`;
export const testServicePassword = 'reader-password-1';
const rootDn = `cn=admin,${testBaseDn}`;
const rootPassword = 'admin-password-1';

/** A person in the test directory: `uid` under ou=people, with group cns under ou=groups. */
export interface TestPerson {
  uid: string;
  password: string;
  groups: string[];
}

export interface TestDirectory {
  /** `ldap://127.0.0.1:<port>` */
  url: string;
  /** A 0600 file that contains the service account's password. */
  servicePasswordFile: string;
  /** Removes `uid` from the members of `group` through the running server, as the directory's rootdn. */
  removeFromGroup(uid: string, group: string): Promise<void>;
  /** Stops slapd but keeps its files, so a test can see the appliance with its directory down. */
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a throwaway OpenLDAP slapd on 127.0.0.1 with a free port: a
 * slapd.conf with an mdb database in a temporary directory, loaded with
 * slapadd from an LDIF of `people` and their groups (groupOfNames).
 * Anonymous clients may only bind; any bound account may read entries.
 */
export async function startTestDirectory(people: TestPerson[]): Promise<TestDirectory> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'appliance-slapd-'));
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);

  const configFile = path.join(dir, 'slapd.conf');
  fs.writeFileSync(configFile, slapdConfig(dir, dataDir));
  const ldifFile = path.join(dir, 'entries.ldif');
  fs.writeFileSync(ldifFile, entriesLdif(people));

  const loaded = spawnSync(slapaddBinary, ['-f', configFile, '-l', ldifFile], { encoding: 'utf8' });
  if (loaded.status !== 0) throw new Error(`slapadd failed: ${loaded.stderr}`);

  const servicePasswordFile = path.join(dir, 'service-password');
  fs.writeFileSync(servicePasswordFile, `${testServicePassword}\n`, { mode: 0o600 });

  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  let server: ChildProcess | undefined = await startSlapd(configFile, url);

  const stop = async () => {
    if (!server) return;
    const exited = new Promise((resolve) => server!.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
    server = undefined;
  };

  return {
    url,
    servicePasswordFile,
    async removeFromGroup(uid, group) {
      const client = new Client({ url });
      try {
        await client.bind(rootDn, rootPassword);
        await client.modify(
          `cn=${group},ou=groups,${testBaseDn}`,
          new Change({
            operation: 'delete',
            modification: new Attribute({
              type: 'member',
              values: [`uid=${uid},ou=people,${testBaseDn}`],
            }),
          }),
        );
      } finally {
        await client.unbind();
      }
    },
    stop,
    async close() {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startSlapd(configFile: string, url: string): Promise<ChildProcess> {
  // -d keeps slapd in the foreground, so the test owns the process and its exit.
  const server = spawn(slapdBinary, ['-d', '0', '-f', configFile, '-h', url], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  server.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const { port } = new URL(url);
  for (let attempt = 0; attempt < 100; attempt++) {
    if (server.exitCode !== null) throw new Error(`slapd exited: ${stderr}`);
    if (await accepts(Number(port))) return server;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  server.kill('SIGKILL');
  throw new Error(`slapd did not accept connections on ${url} within 5 seconds: ${stderr}`);
}

function slapdConfig(dir: string, dataDir: string): string {
  return [
    ...['core', 'cosine', 'inetorgperson', 'nis'].map(
      (schema) => `include ${schemaDir}/${schema}.schema`,
    ),
    `pidfile ${dir}/slapd.pid`,
    `modulepath ${moduleDir}`,
    'moduleload back_mdb',
    'database mdb',
    `suffix "${testBaseDn}"`,
    `rootdn "${rootDn}"`,
    `rootpw ${rootPassword}`,
    `directory ${dataDir}`,
    'maxsize 16777216',
    'access to attrs=userPassword by anonymous auth by * none',
    'access to * by users read by * none',
    '',
  ].join('\n');
}

function entriesLdif(people: TestPerson[]): string {
  const entries = [
    [
      `dn: ${testBaseDn}`,
      'objectClass: dcObject',
      'objectClass: organization',
      'o: Example',
      'dc: example',
    ],
    [`dn: ou=people,${testBaseDn}`, 'objectClass: organizationalUnit', 'ou: people'],
    [`dn: ou=groups,${testBaseDn}`, 'objectClass: organizationalUnit', 'ou: groups'],
    [
      `dn: ${testServiceDn}`,
      'objectClass: person',
      'cn: appliance-reader',
      'sn: reader',
      `userPassword: ${testServicePassword}`,
    ],
    ...people.map((person) => [
      `dn: uid=${person.uid},ou=people,${testBaseDn}`,
      'objectClass: inetOrgPerson',
      `uid: ${person.uid}`,
      `cn: ${person.uid}`,
      `sn: ${person.uid}`,
      `userPassword: ${person.password}`,
    ]),
    ...groupNames(people).map((group) => [
      `dn: cn=${group},ou=groups,${testBaseDn}`,
      'objectClass: groupOfNames',
      `cn: ${group}`,
      ...people
        .filter((person) => person.groups.includes(group))
        .map((person) => `member: uid=${person.uid},ou=people,${testBaseDn}`),
    ]),
  ];
  return entries.map((lines) => lines.join('\n')).join('\n\n') + '\n';
}

function groupNames(people: TestPerson[]): string[] {
  return [...new Set(people.flatMap((person) => person.groups))];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
