import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * The recovery key's public record and the escrow copy of each prompt data
 * key. The recovery key itself and its shares are never stored: only its
 * SHA-256 fingerprint and the X25519 public key derived from it, which lets
 * new data keys be escrowed without the custodians.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('recovery_keys', {
    fingerprint: { type: DataTypes.STRING(64), primaryKey: true },
    public_key: { type: DataTypes.BLOB, allowNull: false },
    share_count: { type: DataTypes.INTEGER, allowNull: false },
    threshold: { type: DataTypes.INTEGER, allowNull: false },
    /** JSON array of custodian names, in share order. */
    custodians: { type: DataTypes.TEXT, allowNull: false },
    created_by: { type: DataTypes.STRING(64), allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });

  await queryInterface.createTable('recovery_escrow', {
    prompt_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'prompts', key: 'id' },
      onDelete: 'CASCADE',
    },
    key_version: { type: DataTypes.INTEGER, primaryKey: true },
    recovery_fingerprint: {
      type: DataTypes.STRING(64),
      allowNull: false,
      references: { model: 'recovery_keys', key: 'fingerprint' },
      onDelete: 'CASCADE',
    },
    /** See appliance/recovery/escrow.ts for the layout. */
    sealed_key: { type: DataTypes.BLOB, allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('recovery_escrow');
  await queryInterface.dropTable('recovery_keys');
};
