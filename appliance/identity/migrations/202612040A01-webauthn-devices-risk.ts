import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

const userReference = {
  type: DataTypes.STRING(36),
  allowNull: false,
  references: { model: 'users', key: 'id' },
  onDelete: 'CASCADE',
} as const;

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // WebAuthn credentials: the COSE public key and signature counter the
  // authenticator returned at registration; no private key ever reaches the server.
  await queryInterface.createTable('webauthn_credentials', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    user_id: userReference,
    credential_id: { type: DataTypes.STRING(1400), allowNull: false, unique: true },
    public_key: { type: DataTypes.BLOB, allowNull: false },
    counter: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
    transports: { type: DataTypes.TEXT, allowNull: false },
    device_type: { type: DataTypes.STRING(16), allowNull: false },
    backed_up: { type: DataTypes.BOOLEAN, allowNull: false },
    name: { type: DataTypes.STRING(64), allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    last_used_at: { type: DataTypes.DATE, allowNull: true },
  });
  await queryInterface.addIndex('webauthn_credentials', ['user_id']);

  // One pending WebAuthn challenge per purpose and binding (a session or an
  // MFA challenge); the key is the SHA-256 of both, never the binding token.
  await queryInterface.createTable('webauthn_ceremonies', {
    id: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: userReference,
    challenge: { type: DataTypes.STRING(128), allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });

  // Browsers that signed in: the cookie value is stored only as its SHA-256.
  await queryInterface.createTable('user_devices', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    user_id: userReference,
    cookie_hash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
    user_agent: { type: DataTypes.STRING(256), allowNull: true },
    last_ip: { type: DataTypes.STRING(64), allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    last_seen_at: { type: DataTypes.DATE, allowNull: false },
    trusted_at: { type: DataTypes.DATE, allowNull: true },
    trust_stamp: { type: DataTypes.STRING(64), allowNull: true },
    revoked_at: { type: DataTypes.DATE, allowNull: true },
  });
  await queryInterface.addIndex('user_devices', ['user_id']);

  // Sessions that passed a second factor, keyed by the SHA-256 of the session token.
  await queryInterface.createTable('session_second_factors', {
    session_hash: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: userReference,
    method: { type: DataTypes.STRING(16), allowNull: false },
    verified_at: { type: DataTypes.DATE, allowNull: false },
  });
  await queryInterface.addIndex('session_second_factors', ['user_id']);

  // Password sign-in attempts per user, the history adaptive risk scoring compares against.
  await queryInterface.createTable('sign_in_events', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    user_id: userReference,
    source_ip: { type: DataTypes.STRING(64), allowNull: false },
    succeeded: { type: DataTypes.BOOLEAN, allowNull: false },
    occurred_at: { type: DataTypes.DATE, allowNull: false },
  });
  await queryInterface.addIndex('sign_in_events', ['user_id', 'occurred_at']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('sign_in_events');
  await queryInterface.dropTable('session_second_factors');
  await queryInterface.dropTable('user_devices');
  await queryInterface.dropTable('webauthn_ceremonies');
  await queryInterface.dropTable('webauthn_credentials');
};
