import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // A local user signed in through OpenID Connect is linked by the provider's
  // issuer and subject, never by name: a provider user renamed to a local
  // admin's name does not become that admin.
  await queryInterface.createTable('oidc_links', {
    issuer: { type: DataTypes.STRING(512), allowNull: false, primaryKey: true },
    subject: { type: DataTypes.STRING(255), allowNull: false, primaryKey: true },
    user_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      unique: true,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    created_at: { type: DataTypes.DATE, allowNull: false },
    last_login_at: { type: DataTypes.DATE, allowNull: false },
  });

  // Sign-ins in progress: the state, nonce and PKCE verifier stay here, keyed
  // by the SHA-256 of a random value in the browser's cookie, and are deleted
  // when the callback reads them.
  await queryInterface.createTable('oidc_login_attempts', {
    id: { type: DataTypes.STRING(64), primaryKey: true },
    state: { type: DataTypes.STRING(128), allowNull: false },
    nonce: { type: DataTypes.STRING(128), allowNull: false },
    code_verifier: { type: DataTypes.STRING(128), allowNull: false },
    redirect_uri: { type: DataTypes.STRING(1024), allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('oidc_login_attempts');
  await queryInterface.dropTable('oidc_links');
};
