import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Tenant keys of appliance-keyed projects. Such a project's tenant key is a
 * random AES-256 key stored in its project_key_versions row wrapped by a
 * master key version (wrapped_key, master_key_uri), and it wraps the
 * project's data keys in project_data_keys. Its key_uri is the row's
 * location, `sqlite:project_key_versions/<project id>/<version>`. Rows of
 * customer-keyed projects leave both new columns null: their key lives on
 * the customer token. The start-up of the tenants domain gives existing
 * appliance-keyed projects their first version, because that needs the HSM.
 *
 * tenant_key_escrow holds each such tenant key sealed to the recovery key,
 * so a restore onto a new token can wrap it under the new master key.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.addColumn('project_key_versions', 'wrapped_key', {
    type: DataTypes.BLOB,
    allowNull: true,
  });
  await queryInterface.addColumn('project_key_versions', 'master_key_uri', {
    type: DataTypes.STRING(512),
    allowNull: true,
  });

  await queryInterface.createTable('tenant_key_escrow', {
    project_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'projects', key: 'id' },
      onDelete: 'CASCADE',
    },
    version: { type: DataTypes.INTEGER, primaryKey: true },
    recovery_fingerprint: {
      type: DataTypes.STRING(64),
      allowNull: false,
      references: { model: 'recovery_keys', key: 'fingerprint' },
      onDelete: 'CASCADE',
    },
    // Same layout as recovery_escrow.sealed_key; see appliance/tenants/tenant-key-escrow.ts for the binding.
    sealed_key: { type: DataTypes.BLOB, allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('tenant_key_escrow');
  await queryInterface.removeColumn('project_key_versions', 'master_key_uri');
  await queryInterface.removeColumn('project_key_versions', 'wrapped_key');
};
