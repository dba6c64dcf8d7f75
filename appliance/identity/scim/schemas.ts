import { z } from 'zod';

/** Schema URNs of RFC 7643 and RFC 7644. */
export const scimSchemas = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  listResponse: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
  patchOp: 'urn:ietf:params:scim:api:messages:2.0:PatchOp',
  error: 'urn:ietf:params:scim:api:messages:2.0:Error',
  serviceProviderConfig: 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig',
  resourceType: 'urn:ietf:params:scim:schemas:core:2.0:ResourceType',
  schema: 'urn:ietf:params:scim:schemas:core:2.0:Schema',
} as const;

/** Largest page a list returns; a larger `count` is cut to it (RFC 7644 section 3.4.2.4). */
export const maxResults = 200;

const text = (max: number) => z.string().max(max);

/**
 * The user attributes this server stores. Unknown attributes (the
 * enterprise extension, `password`) are accepted and ignored, because
 * provisioning clients send them routinely.
 */
export const userInput = z.looseObject({
  schemas: z.array(z.string()).optional(),
  userName: z.string().min(1).max(256),
  externalId: text(255).optional(),
  active: z.boolean().optional(),
  displayName: text(256).optional(),
  name: z
    .looseObject({
      formatted: text(256).optional(),
      givenName: text(128).optional(),
      familyName: text(128).optional(),
    })
    .optional(),
  emails: z
    .array(
      z.looseObject({
        value: z.string().min(3).max(320),
        type: text(32).optional(),
        primary: z.boolean().optional(),
      }),
    )
    .max(10)
    .optional(),
});
export type UserInput = z.infer<typeof userInput>;

export const groupInput = z.looseObject({
  schemas: z.array(z.string()).optional(),
  displayName: z.string().min(1).max(255),
  externalId: text(255).optional(),
  members: z
    .array(z.looseObject({ value: z.string().min(1).max(64) }))
    .max(10_000)
    .optional(),
});
export type GroupInput = z.infer<typeof groupInput>;

export const patchInput = z.object({
  schemas: z.array(z.string()).optional(),
  Operations: z
    .array(
      z.looseObject({
        op: z.string().max(16),
        path: z.string().max(512).optional(),
        value: z.unknown().optional(),
      }),
    )
    .min(1)
    .max(100),
});
export type PatchOperation = z.infer<typeof patchInput>['Operations'][number];

/** List parameters. Values out of range are clamped, as RFC 7644 section 3.4.2.4 specifies. */
export const listQuery = z.looseObject({
  filter: z.string().max(1024).optional(),
  startIndex: z.coerce
    .number()
    .int()
    .optional()
    .transform((value) => Math.max(1, value ?? 1)),
  count: z.coerce
    .number()
    .int()
    .optional()
    .transform((value) => Math.min(maxResults, Math.max(0, value ?? 100))),
});

export const resourceId = z.object({ id: z.string().min(1).max(64) });
