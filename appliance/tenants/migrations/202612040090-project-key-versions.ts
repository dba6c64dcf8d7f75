import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Versions of each project's tenant master key, so a project's key can be
 * rotated like the appliance master key, and the version that wraps each
 * project data key. Existing customer-keyed projects get version 1, the
 * key that project creation generated; projects.key_uri stays the URI of
 * the active version.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('project_key_versions', {
    project_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'projects', key: 'id' },
      onDelete: 'RESTRICT',
    },
    version: { type: DataTypes.INTEGER, primaryKey: true },
    // PKCS#11 URI (RFC 7512) of the key on the customer token.
    key_uri: { type: DataTypes.STRING(512), allowNull: false, unique: true },
    // active: wraps new data keys; decrypt-only: unwraps older ones; retired: unwraps nothing.
    state: { type: DataTypes.STRING(16), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
    created_by: { type: DataTypes.STRING(128), allowNull: false },
    retired_at: { type: DataTypes.STRING(32), allowNull: true },
  });

  await queryInterface.sequelize.query(
    `INSERT INTO project_key_versions (project_id, version, key_uri, state, created_at, created_by)
     SELECT id, 1, key_uri, 'active', COALESCE(key_state_changed_at, created_at), created_by
     FROM projects WHERE key_mode = 'customer' AND key_uri IS NOT NULL`,
  );

  await queryInterface.addColumn('project_data_keys', 'tenant_key_version', {
    type: DataTypes.INTEGER,
    allowNull: false,
    defaultValue: 1,
  });
  await queryInterface.addIndex('project_data_keys', ['project_id', 'tenant_key_version']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.removeIndex('project_data_keys', ['project_id', 'tenant_key_version']);
  await queryInterface.removeColumn('project_data_keys', 'tenant_key_version');
  await queryInterface.dropTable('project_key_versions');
};
