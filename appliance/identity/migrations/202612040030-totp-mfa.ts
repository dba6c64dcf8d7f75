import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // One TOTP authenticator per user: the secret is sealed with AES-256-GCM under a
  // per-user data key, and only the HSM-wrapped form of that key is stored.
  await queryInterface.createTable('user_totp', {
    user_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    wrapped_key: { type: DataTypes.BLOB, allowNull: false },
    master_key_uri: { type: DataTypes.STRING(512), allowNull: false },
    sealed_secret: { type: DataTypes.BLOB, allowNull: false },
    confirmed_at: { type: DataTypes.DATE, allowNull: true },
    last_used_step: { type: DataTypes.INTEGER, allowNull: true },
    created_at: { type: DataTypes.DATE, allowNull: false },
  });

  await queryInterface.createTable('user_recovery_codes', {
    code_hash: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    used_at: { type: DataTypes.DATE, allowNull: true },
    created_at: { type: DataTypes.DATE, allowNull: false },
  });
  await queryInterface.addIndex('user_recovery_codes', ['user_id']);

  // A password-verified sign-in that still waits for its second factor.
  await queryInterface.createTable('mfa_challenges', {
    id: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    failed_attempts: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('mfa_challenges');
  await queryInterface.dropTable('user_recovery_codes');
  await queryInterface.dropTable('user_totp');
};
