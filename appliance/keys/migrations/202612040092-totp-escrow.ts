import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

/**
 * The escrow copy of each TOTP data key (user_totp.wrapped_key), sealed to
 * the recovery public key like the prompt data keys in recovery_escrow, so
 * a backup restored onto a new token can still check TOTP codes.
 */
export const up: Migration['up'] = async ({ context: queryInterface }) => {
  await queryInterface.createTable('totp_escrow', {
    user_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    recovery_fingerprint: {
      type: DataTypes.STRING(64),
      allowNull: false,
      references: { model: 'recovery_keys', key: 'fingerprint' },
      onDelete: 'CASCADE',
    },
    // Same layout as recovery_escrow.sealed_key; see appliance/keys/totp-keys.ts for the binding.
    sealed_key: { type: DataTypes.BLOB, allowNull: false },
    created_at: { type: DataTypes.STRING(32), allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('totp_escrow');
};
