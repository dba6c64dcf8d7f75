import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

// A data classification label per prompt, which grant conditions can limit
// (maxClassification). Existing prompts become `internal`, the default label.
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.addColumn('prompts', 'classification', {
    type: DataTypes.STRING(16),
    allowNull: false,
    defaultValue: 'internal',
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.removeColumn('prompts', 'classification');
};
