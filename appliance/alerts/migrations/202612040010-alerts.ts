import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // Times are ISO 8601 UTC strings of equal length, so text order is time order.
  await queryInterface.createTable('alerts', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    rule_id: { type: DataTypes.STRING(64), allowNull: false },
    severity: { type: DataTypes.STRING(16), allowNull: false },
    status: { type: DataTypes.STRING(16), allowNull: false },
    entity_field: { type: DataTypes.STRING(64), allowNull: false },
    entity_value: { type: DataTypes.STRING(256), allowNull: false },
    summary: { type: DataTypes.STRING(512), allowNull: false },
    event_count: { type: DataTypes.INTEGER, allowNull: false },
    first_seen: { type: DataTypes.STRING(32), allowNull: false },
    last_seen: { type: DataTypes.STRING(32), allowNull: false },
    query_index: { type: DataTypes.STRING(256), allowNull: false },
    query_dsl: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
    updated_at: { type: DataTypes.STRING(32), allowNull: false },
  });
  await queryInterface.addIndex('alerts', ['rule_id', 'entity_value', 'last_seen']);
  await queryInterface.addIndex('alerts', ['last_seen']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('alerts');
};
