import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // The access token signing key: the PKCS#8 private key sealed with AES-256-GCM
  // under a data key, and that data key wrapped by the HSM master key.
  await queryInterface.createTable('oauth_signing_keys', {
    kid: { type: DataTypes.STRING(64), primaryKey: true },
    public_jwk: { type: DataTypes.TEXT, allowNull: false },
    sealed_private_key: { type: DataTypes.BLOB, allowNull: false },
    wrapped_data_key: { type: DataTypes.BLOB, allowNull: false },
    master_key_uri: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
  });

  // Clients of the client credentials grant; only the SHA-256 of the secret is stored.
  await queryInterface.createTable('oauth_clients', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    owner_user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    name: { type: DataTypes.STRING(64), allowNull: false },
    secret_hash: { type: DataTypes.STRING(64), allowNull: false },
    secret_last_four: { type: DataTypes.STRING(4), allowNull: false },
    permissions: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: true },
    disabled_at: { type: DataTypes.DATE, allowNull: true },
    secret_rotated_at: { type: DataTypes.DATE, allowNull: true },
    last_used_at: { type: DataTypes.DATE, allowNull: true },
  });

  // Refresh token families of signed-in users and the tokens of each family.
  await queryInterface.createTable('oauth_token_families', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    name: { type: DataTypes.STRING(64), allowNull: false },
    permissions: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
    revoked_at: { type: DataTypes.DATE, allowNull: true },
  });
  await queryInterface.createTable('oauth_refresh_tokens', {
    token_hash: { type: DataTypes.STRING(64), primaryKey: true },
    family_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'oauth_token_families', key: 'id' },
      onDelete: 'CASCADE',
    },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
    used_at: { type: DataTypes.DATE, allowNull: true },
  });
  await queryInterface.addIndex('oauth_refresh_tokens', ['family_id']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('oauth_refresh_tokens');
  await queryInterface.dropTable('oauth_token_families');
  await queryInterface.dropTable('oauth_clients');
  await queryInterface.dropTable('oauth_signing_keys');
};
