import { z } from 'zod';

/** CK_TOKEN_INFO.label is 32 bytes of UTF-8, blank padded. */
const tokenLabelBytes = 32;

const tokenLabel = z
  .string('must be a string')
  .min(1, 'must not be empty')
  .refine((value) => value.trim() === value, 'must not start or end with a blank')
  .refine(
    (value) => Buffer.byteLength(value, 'utf8') <= tokenLabelBytes,
    `must be at most ${tokenLabelBytes} bytes of UTF-8`,
  );

const pinFile = z
  .string('must be a string')
  .min(1, 'must not be empty')
  .refine((value) => value.startsWith('/'), 'must be an absolute path');

export const newProjectInput = z
  .object({
    name: z
      .string('must be a string')
      .trim()
      .min(1, 'must not be empty')
      .max(200, 'must be at most 200 characters'),
    keyMode: z.enum(['appliance', 'customer'], "must be 'appliance' or 'customer'"),
    token: z.object({ label: tokenLabel, pinFile }, 'must be an object').optional(),
  })
  .superRefine((value, context) => {
    if (value.keyMode === 'customer' && value.token === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['token'],
        message: 'is required when keyMode is customer: give the label and PIN file of its token',
      });
    }
    if (value.keyMode === 'appliance' && value.token !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['token'],
        message: 'must be left out when keyMode is appliance',
      });
    }
  });

export const restoreInput = z.object({ pinFile });

export const projectParams = z.object({ id: z.uuid('must be a UUID as returned by the API') });
