import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

const id = { type: DataTypes.STRING(36), primaryKey: true };
const userRef = (allowNull: boolean) => ({
  type: DataTypes.STRING(36),
  allowNull,
  references: { model: 'users', key: 'id' },
});
const text = (allowNull: boolean) => ({ type: DataTypes.TEXT, allowNull });
const date = (allowNull: boolean) => ({ type: DataTypes.DATE, allowNull });

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // Custom roles; built-in roles live in code. Permissions and parents are JSON arrays.
  await queryInterface.createTable('access_roles', {
    id,
    name: { type: DataTypes.STRING(40), allowNull: false, unique: true },
    description: text(false),
    permissions: text(false),
    inherits: text(false),
    created_by: userRef(true),
    created_at: date(false),
    updated_at: date(false),
  });

  // Grants beyond a user's base role: a role (or, for a delegation, a list of
  // permissions) at a scope, under optional conditions, until an optional expiry.
  await queryInterface.createTable('access_grants', {
    id,
    user_id: { ...userRef(false), onDelete: 'CASCADE' },
    role: { type: DataTypes.STRING(40), allowNull: true },
    permissions: text(true),
    scope_type: { type: DataTypes.STRING(16), allowNull: false },
    scope_id: { type: DataTypes.STRING(36), allowNull: true },
    conditions: text(true),
    source: { type: DataTypes.STRING(16), allowNull: false },
    granted_by: userRef(true),
    justification: text(true),
    created_at: date(false),
    expires_at: date(true),
    renewed_at: date(true),
    renewed_by: userRef(true),
    revoked_at: date(true),
    revoked_by: userRef(true),
    revoke_reason: text(true),
  });
  await queryInterface.addIndex('access_grants', ['user_id']);

  await queryInterface.createTable('break_glass_activations', {
    id,
    grant_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'access_grants', key: 'id' },
    },
    user_id: userRef(false),
    justification: text(false),
    started_at: date(false),
    ends_at: date(false),
    ended_at: date(true),
    alert_id: { type: DataTypes.STRING(36), allowNull: true },
    reviewed_by: userRef(true),
    reviewed_at: date(true),
    outcome: { type: DataTypes.STRING(16), allowNull: true },
    review_comment: text(true),
  });

  await queryInterface.createTable('access_reviews', {
    id,
    name: { type: DataTypes.STRING(120), allowNull: false },
    created_by: userRef(false),
    created_at: date(false),
    due_at: date(false),
    unreviewed_action: { type: DataTypes.STRING(16), allowNull: false },
    closed_at: date(true),
  });

  // One row per grant under review, with the permissions it gave at the snapshot.
  await queryInterface.createTable('access_review_items', {
    id,
    review_id: {
      type: DataTypes.STRING(36),
      allowNull: false,
      references: { model: 'access_reviews', key: 'id' },
      onDelete: 'CASCADE',
    },
    user_id: userRef(false),
    username: { type: DataTypes.STRING(256), allowNull: false },
    kind: { type: DataTypes.STRING(16), allowNull: false },
    grant_id: { type: DataTypes.STRING(36), allowNull: true },
    role: { type: DataTypes.STRING(40), allowNull: true },
    scope_type: { type: DataTypes.STRING(16), allowNull: false },
    scope_id: { type: DataTypes.STRING(36), allowNull: true },
    permissions: text(false),
    decision: { type: DataTypes.STRING(16), allowNull: true },
    decided_by: userRef(true),
    decided_at: date(true),
    comment: text(true),
  });
  await queryInterface.addIndex('access_review_items', ['review_id']);

  // Access changes that wait for a second admin when approval is required.
  await queryInterface.createTable('access_change_requests', {
    id,
    kind: { type: DataTypes.STRING(32), allowNull: false },
    payload: text(false),
    summary: text(false),
    requested_by: userRef(false),
    requested_at: date(false),
    status: { type: DataTypes.STRING(16), allowNull: false },
    decided_by: userRef(true),
    decided_at: date(true),
    comment: text(true),
  });
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('access_change_requests');
  await queryInterface.dropTable('access_review_items');
  await queryInterface.dropTable('access_reviews');
  await queryInterface.dropTable('break_glass_activations');
  await queryInterface.dropTable('access_grants');
  await queryInterface.dropTable('access_roles');
};
