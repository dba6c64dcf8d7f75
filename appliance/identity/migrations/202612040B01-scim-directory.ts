import { DataTypes } from 'sequelize';

import type { Migration } from '../../platform/migrations';

export const up: Migration['up'] = async ({ context: queryInterface }) => {
  // Users that SCIM created and manages. SCIM sees and changes only these, never
  // local accounts. `profile` is the JSON of name, displayName and emails,
  // which the users table does not keep.
  await queryInterface.createTable('scim_users', {
    user_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'users', key: 'id' },
      onDelete: 'CASCADE',
    },
    external_id: { type: DataTypes.STRING(255), allowNull: true },
    active: { type: DataTypes.BOOLEAN, allowNull: false },
    profile: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    updated_at: { type: DataTypes.DATE, allowNull: false },
  });

  // SCIM groups; their displayName is the group name the role map matches.
  await queryInterface.createTable('scim_groups', {
    id: { type: DataTypes.STRING(36), primaryKey: true },
    display_name: { type: DataTypes.STRING(255), allowNull: false, unique: true },
    external_id: { type: DataTypes.STRING(255), allowNull: true },
    created_at: { type: DataTypes.DATE, allowNull: false },
    updated_at: { type: DataTypes.DATE, allowNull: false },
  });

  await queryInterface.createTable('scim_group_members', {
    group_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'scim_groups', key: 'id' },
      onDelete: 'CASCADE',
    },
    user_id: {
      type: DataTypes.STRING(36),
      primaryKey: true,
      references: { model: 'scim_users', key: 'user_id' },
      onDelete: 'CASCADE',
    },
  });
  await queryInterface.addIndex('scim_group_members', ['user_id']);
};

export const down: Migration['down'] = async ({ context: queryInterface }) => {
  await queryInterface.dropTable('scim_group_members');
  await queryInterface.dropTable('scim_groups');
  await queryInterface.dropTable('scim_users');
};
