import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

// Projects an API key is limited to, as a JSON array of ids; null means no limit.
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.addColumn('api_keys', 'project_ids', {
    type: DataTypes.TEXT,
    allowNull: true,
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.removeColumn('api_keys', 'project_ids');
};
