import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Folders, prompts, their immutable versions and the wrapped data key of each
 * prompt. Every column named `*_sealed` holds AES-256-GCM output (see
 * appliance/vault/field-cipher.ts), never plaintext; folder names are not
 * prompt content and stay readable.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('folders', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    name: { type: DataTypes.STRING(200), allowNull: false },
    parent_id: {
      type: DataTypes.STRING(36),
      allowNull: true,
      references: { model: 'folders', key: 'id' },
      onDelete: 'RESTRICT',
    },
    created_by: { type: DataTypes.STRING(36), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });
  await queryInterface.addIndex('folders', ['parent_id']);

  await queryInterface.createTable('prompts', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    folder_id: {
      type: DataTypes.STRING(36),
      allowNull: true,
      references: { model: 'folders', key: 'id' },
      onDelete: 'RESTRICT',
    },
    key_version: { type: DataTypes.INTEGER, allowNull: false },
    title_sealed: { type: DataTypes.BLOB, allowNull: false },
    description_sealed: { type: DataTypes.BLOB, allowNull: true },
    tags_sealed: { type: DataTypes.BLOB, allowNull: false },
    latest_version: { type: DataTypes.INTEGER, allowNull: false },
    archived: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
    archived_at: { type: DataTypes.STRING(32), allowNull: true },
    created_by: { type: DataTypes.STRING(36), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
    updated_at: { type: DataTypes.STRING(32), allowNull: false },
  });
  await queryInterface.addIndex('prompts', ['folder_id']);
  await queryInterface.addIndex('prompts', ['updated_at']);

  await queryInterface.createTable('prompt_data_keys', {
    prompt_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'prompts', key: 'id' },
      onDelete: 'CASCADE',
    },
    key_version: { type: DataTypes.INTEGER, primaryKey: true },
    wrapped_key: { type: DataTypes.BLOB, allowNull: false },
    wrap_mechanism: { type: DataTypes.STRING(32), allowNull: false },
    master_key_uri: { type: DataTypes.STRING(512), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });

  await queryInterface.createTable('prompt_versions', {
    prompt_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'prompts', key: 'id' },
      onDelete: 'CASCADE',
    },
    number: { type: DataTypes.INTEGER, primaryKey: true },
    key_version: { type: DataTypes.INTEGER, allowNull: false },
    body_sealed: { type: DataTypes.BLOB, allowNull: false },
    note_sealed: { type: DataTypes.BLOB, allowNull: true },
    created_by: { type: DataTypes.STRING(36), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });

  // A version is never edited once written; a change is a new version.
  await queryInterface.sequelize.query(
    `CREATE TRIGGER prompt_versions_immutable BEFORE UPDATE ON prompt_versions
     BEGIN SELECT RAISE(ABORT, 'prompt versions are immutable: add a new version instead'); END`,
  );
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.sequelize.query('DROP TRIGGER IF EXISTS prompt_versions_immutable');
  await queryInterface.dropTable('prompt_versions');
  await queryInterface.dropTable('prompt_data_keys');
  await queryInterface.dropTable('prompts');
  await queryInterface.dropTable('folders');
};
