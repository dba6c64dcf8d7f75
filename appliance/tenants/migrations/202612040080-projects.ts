import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Projects (tenants) and the data keys of prompts in customer-keyed
 * projects. Those data keys are wrapped by the project's tenant master key
 * on the customer's token, so they live apart from prompt_data_keys: master
 * key rotation and recovery escrow work on prompt_data_keys only and must
 * never hold a copy that the appliance could open without the customer key.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('projects', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    name: { type: DataTypes.STRING(200), allowNull: false, unique: true },
    // 'appliance' or 'customer'.
    key_mode: { type: DataTypes.STRING(16), allowNull: false },
    token_label: { type: DataTypes.STRING(32), allowNull: true, unique: true },
    // Path of the customer's user PIN file, never the PIN itself.
    pin_file: { type: DataTypes.STRING(1024), allowNull: true },
    // PKCS#11 URI (RFC 7512) of the tenant master key.
    key_uri: { type: DataTypes.STRING(512), allowNull: true },
    // 'active' or 'revoked'; a destroyed key is found missing on the token.
    key_state: { type: DataTypes.STRING(16), allowNull: true },
    key_state_changed_at: { type: DataTypes.STRING(32), allowNull: true },
    created_by: { type: DataTypes.STRING(36), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });

  await queryInterface.createTable('project_data_keys', {
    prompt_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'prompts', key: 'id' },
      onDelete: 'CASCADE',
    },
    key_version: { type: DataTypes.INTEGER, primaryKey: true },
    project_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'projects', key: 'id' },
      onDelete: 'RESTRICT',
    },
    wrapped_key: { type: DataTypes.BLOB, allowNull: false },
    wrap_mechanism: { type: DataTypes.STRING(32), allowNull: false },
    tenant_key_uri: { type: DataTypes.STRING(512), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });
  await queryInterface.addIndex('project_data_keys', ['project_id']);

  // Which project each prompt belongs to; prompts without a row are in no project.
  await queryInterface.createTable('project_prompts', {
    prompt_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'prompts', key: 'id' },
      onDelete: 'CASCADE',
    },
    project_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'projects', key: 'id' },
      onDelete: 'RESTRICT',
    },
  });
  await queryInterface.addIndex('project_prompts', ['project_id']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('project_prompts');
  await queryInterface.dropTable('project_data_keys');
  await queryInterface.dropTable('projects');
};
