import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * The project of a tenant key rotation. Rotations of the appliance master
 * key have none, so existing rows keep NULL.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.addColumn('key_rotations', 'project_id', {
    type: DataTypes.STRING(36),
    allowNull: true,
  });
  await queryInterface.addIndex('key_rotations', ['project_id', 'state']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.removeIndex('key_rotations', ['project_id', 'state']);
  await queryInterface.removeColumn('key_rotations', 'project_id');
};
