import { maxResults, scimSchemas } from './schemas';

/** ServiceProviderConfig (RFC 7643 section 5): what this server supports. */
export function serviceProviderConfig(baseUrl: string) {
  return {
    schemas: [scimSchemas.serviceProviderConfig],
    documentationUri: 'https://datatracker.ietf.org/doc/html/rfc7644',
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'API key',
        description:
          'An appliance API key (pba_...) sent as "Authorization: Bearer <key>", holding users:read, users:create, users:update and users:delete.',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}

export function resourceTypes(baseUrl: string) {
  return [
    {
      schemas: [scimSchemas.resourceType],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      schema: scimSchemas.user,
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/User` },
    },
    {
      schemas: [scimSchemas.resourceType],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      schema: scimSchemas.group,
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/Group` },
    },
  ];
}

type Attribute = {
  name: string;
  type: 'string' | 'boolean' | 'complex' | 'reference';
  multiValued?: boolean;
  required?: boolean;
  mutability?: 'readOnly' | 'readWrite' | 'immutable';
  uniqueness?: 'none' | 'server';
  subAttributes?: Attribute[];
};

/** Fills the attribute characteristics RFC 7643 section 7 lists, with its defaults. */
function attribute(spec: Attribute): Record<string, unknown> {
  return {
    name: spec.name,
    type: spec.type,
    multiValued: spec.multiValued ?? false,
    required: spec.required ?? false,
    caseExact: false,
    mutability: spec.mutability ?? 'readWrite',
    returned: 'default',
    uniqueness: spec.uniqueness ?? 'none',
    ...(spec.subAttributes ? { subAttributes: spec.subAttributes.map(attribute) } : {}),
  };
}

/** Returns the User and Group schemas, limited to the attributes this server stores. */
export function schemaDefinitions(baseUrl: string) {
  const user = [
    { name: 'userName', type: 'string', required: true, uniqueness: 'server' },
    { name: 'externalId', type: 'string' },
    { name: 'displayName', type: 'string' },
    {
      name: 'name',
      type: 'complex',
      subAttributes: [
        { name: 'formatted', type: 'string' },
        { name: 'givenName', type: 'string' },
        { name: 'familyName', type: 'string' },
      ],
    },
    {
      name: 'emails',
      type: 'complex',
      multiValued: true,
      subAttributes: [
        { name: 'value', type: 'string' },
        { name: 'type', type: 'string' },
        { name: 'primary', type: 'boolean' },
      ],
    },
    { name: 'active', type: 'boolean' },
    {
      name: 'groups',
      type: 'complex',
      multiValued: true,
      mutability: 'readOnly',
      subAttributes: [
        { name: 'value', type: 'string', mutability: 'readOnly' },
        { name: 'display', type: 'string', mutability: 'readOnly' },
      ],
    },
  ] satisfies Attribute[];
  const group = [
    { name: 'displayName', type: 'string', required: true, uniqueness: 'server' },
    { name: 'externalId', type: 'string' },
    {
      name: 'members',
      type: 'complex',
      multiValued: true,
      subAttributes: [
        { name: 'value', type: 'string', mutability: 'immutable' },
        { name: 'display', type: 'string', mutability: 'readOnly' },
      ],
    },
  ] satisfies Attribute[];

  return [
    {
      schemas: [scimSchemas.schema],
      id: scimSchemas.user,
      name: 'User',
      description: 'User account',
      attributes: user.map((spec) => attribute(spec as Attribute)),
      meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${scimSchemas.user}` },
    },
    {
      schemas: [scimSchemas.schema],
      id: scimSchemas.group,
      name: 'Group',
      description: 'Group',
      attributes: group.map((spec) => attribute(spec as Attribute)),
      meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${scimSchemas.group}` },
    },
  ];
}
