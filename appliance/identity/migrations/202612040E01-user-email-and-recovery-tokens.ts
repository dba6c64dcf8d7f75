import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // Stored NFKC-normalised, trimmed and lower case, so the unique index
  // compares addresses the way users type them. SQLite allows many NULLs in a
  // unique index, so users without an address do not collide.
  await queryInterface.addColumn('users', 'email', {
    type: DataTypes.STRING(254),
    allowNull: true,
  });
  await queryInterface.addIndex('users', ['email'], { unique: true, name: 'users_email_unique' });

  // One-time account recovery links: only the SHA-256 of the random token is
  // stored, so a copy of the database cannot be used to reset a password.
  await queryInterface.createTable('account_recovery_tokens', {
    token_hash: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });
  await queryInterface.addIndex('account_recovery_tokens', ['user_id']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('account_recovery_tokens');
  await queryInterface.removeIndex('users', 'users_email_unique');
  await queryInterface.removeColumn('users', 'email');
};
