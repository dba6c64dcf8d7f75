import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * Signed checkpoints of the audit chain. `statement` stores the exact bytes
 * that were signed (canonical JSON, UTF-8), so an auditor can check
 * `signature` against them without rebuilding the document.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('audit_checkpoints', {
    seq: { type: DataTypes.INTEGER, primaryKey: true },
    hash: { type: DataTypes.STRING(64), allowNull: false },
    record_count: { type: DataTypes.INTEGER, allowNull: false },
    time: { type: DataTypes.STRING(32), allowNull: false },
    signing_key_uri: { type: DataTypes.STRING(512), allowNull: false },
    statement: { type: DataTypes.TEXT, allowNull: false },
    signature: { type: DataTypes.BLOB, allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('audit_checkpoints');
};
