import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // A session's primary key is the hash of its token, which must not leave the
  // server; the public id names a session in the sessions API. Sessions opened
  // before this migration have none, so they are closed and users sign in again.
  await queryInterface.bulkDelete('sessions', {});
  await queryInterface.addColumn('sessions', 'public_id', {
    type: DataTypes.STRING(36),
    allowNull: true,
  });
  await queryInterface.addIndex('sessions', ['public_id'], { unique: true });

  // API keys: only the SHA-256 of the key is stored, with its last 4 characters for display.
  await queryInterface.createTable('api_keys', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    name: { type: DataTypes.STRING(64), allowNull: false },
    key_hash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
    last_four: { type: DataTypes.STRING(4), allowNull: false },
    permissions: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
    revoked_at: { type: DataTypes.DATE, allowNull: true },
    last_used_at: { type: DataTypes.DATE, allowNull: true },
    last_used_ip: { type: DataTypes.STRING(64), allowNull: true },
  });
  await queryInterface.addIndex('api_keys', ['user_id']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('api_keys');
  await queryInterface.removeIndex('sessions', ['public_id']);
  await queryInterface.removeColumn('sessions', 'public_id');
};
