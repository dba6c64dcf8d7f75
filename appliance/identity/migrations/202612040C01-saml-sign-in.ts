import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // SAML sign-ins in progress, keyed by the SHA-256 of the RelayState sent
  // with the AuthnRequest. The row stores the request ID the response must
  // answer (InResponseTo) and the SHA-256 of the browser's binding cookie. It
  // is deleted when the assertion consumer service reads it.
  await queryInterface.createTable('saml_login_attempts', {
    id: { type: DataTypes.STRING(64), primaryKey: true },
    browser_binding: { type: DataTypes.STRING(64), allowNull: false },
    request_id: { type: DataTypes.STRING(128), allowNull: false },
    issued_at: { type: DataTypes.STRING(64), allowNull: false },
    sp_entity_id: { type: DataTypes.STRING(1024), allowNull: false },
    acs_url: { type: DataTypes.STRING(1024), allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });

  // IDs of accepted assertions, kept until the assertion itself expires, so
  // the same signed assertion cannot open a second session.
  await queryInterface.createTable('saml_used_assertions', {
    assertion_id: { type: DataTypes.STRING(256), primaryKey: true },
    issuer: { type: DataTypes.STRING(1024), allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false },
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('saml_used_assertions');
  await queryInterface.dropTable('saml_login_attempts');
};
