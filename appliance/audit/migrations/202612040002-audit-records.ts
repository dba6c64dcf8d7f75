import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('audit_records', {
    seq: { type: DataTypes.INTEGER, primaryKey: true },
    time: { type: DataTypes.STRING(32), allowNull: false },
    request_id: { type: DataTypes.STRING(64), allowNull: false },
    actor_user_id: { type: DataTypes.STRING(36), allowNull: true },
    actor_username: { type: DataTypes.STRING(64), allowNull: true },
    actor_role: { type: DataTypes.STRING(32), allowNull: true },
    action: { type: DataTypes.STRING(64), allowNull: false },
    resource_type: { type: DataTypes.STRING(32), allowNull: false },
    resource_id: { type: DataTypes.STRING(64), allowNull: true },
    outcome: { type: DataTypes.STRING(16), allowNull: false },
    source_ip: { type: DataTypes.STRING(64), allowNull: false },
    reason: { type: DataTypes.STRING(512), allowNull: true },
    prev_hash: { type: DataTypes.STRING(64), allowNull: false },
    hash: { type: DataTypes.STRING(64), allowNull: false },
  });
  await queryInterface.addIndex('audit_records', ['action', 'time']);

  // Key-value state owned by background jobs: the audit chain head and the
  // forwarder's cursor.
  await queryInterface.createTable('appliance_state', {
    key: { type: DataTypes.STRING(64), primaryKey: true },
    value: { type: DataTypes.TEXT, allowNull: false },
    updated_at: { type: DataTypes.DATE, allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('appliance_state');
  await queryInterface.dropTable('audit_records');
};
