import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Master key versions, the rotations between them, and the master key
 * version of each wrapped data key. Rows that exist before this migration
 * were wrapped under version 1, the key that token set-up made.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('key_versions', {
    version: { type: DataTypes.INTEGER, primaryKey: true },
    key_uri: { type: DataTypes.STRING(512), allowNull: false, unique: true },
    // active: wraps new data keys; decrypt-only: unwraps older ones; retired: unwraps nothing.
    state: { type: DataTypes.STRING(16), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
    created_by: { type: DataTypes.STRING(128), allowNull: false },
    retired_at: { type: DataTypes.STRING(32), allowNull: true },
  });

  await queryInterface.createTable('key_rotations', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    // api, cli or scheduler.
    trigger: { type: DataTypes.STRING(16), allowNull: false },
    actor: { type: DataTypes.STRING(128), allowNull: false },
    key_uri: { type: DataTypes.STRING(512), allowNull: false },
    from_version: { type: DataTypes.INTEGER, allowNull: false },
    to_version: { type: DataTypes.INTEGER, allowNull: false },
    // running, completed or failed.
    state: { type: DataTypes.STRING(16), allowNull: false },
    total: { type: DataTypes.INTEGER, allowNull: false },
    done: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
    // The last (prompt_id, key_version) of prompt_data_keys that a committed batch moved.
    cursor_prompt_id: { type: DataTypes.STRING(36), allowNull: true },
    cursor_key_version: { type: DataTypes.INTEGER, allowNull: true },
    started_at: { type: DataTypes.STRING(32), allowNull: false },
    finished_at: { type: DataTypes.STRING(32), allowNull: true },
    duration_ms: { type: DataTypes.INTEGER, allowNull: true },
    error: { type: DataTypes.TEXT, allowNull: true },
  });
  await queryInterface.addIndex('key_rotations', ['state']);

  await queryInterface.addColumn('prompt_data_keys', 'master_key_version', {
    type: DataTypes.INTEGER,
    allowNull: false,
    defaultValue: 1,
  });
  await queryInterface.addIndex('prompt_data_keys', ['master_key_version']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.removeIndex('prompt_data_keys', ['master_key_version']);
  await queryInterface.removeColumn('prompt_data_keys', 'master_key_version');
  await queryInterface.dropTable('key_rotations');
  await queryInterface.dropTable('key_versions');
};
