import { z } from 'zod';

import { problems, ProblemError } from '../http/problem';
import { classifications } from '../identity/access/scope';
import { fieldErrorsOf } from '../http/validate';

/** Size limits of prompt content. Bodies are counted in UTF-8 bytes, the rest in characters. */
export const limits = {
  bodyBytes: 256 * 1024,
  titleChars: 200,
  descriptionChars: 2000,
  noteChars: 2000,
  tags: 32,
  tagChars: 64,
  folderNameChars: 200,
};

/** C0 and C1 control characters, rejected in one-line fields such as titles and tags. */
const controlCharacters = /\p{Cc}/u;

/** A string field whose message tells a missing value from a value of the wrong type. */
function text() {
  return z.string({
    error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string'),
  });
}

function oneLine(maxChars: number) {
  return text()
    .trim()
    .min(1, 'must not be empty')
    .max(maxChars, `must be at most ${maxChars} characters`)
    .refine(
      (value) => !controlCharacters.test(value),
      'must be one line without control characters',
    );
}

function optionalText(maxChars: number) {
  return text().trim().max(maxChars, `must be at most ${maxChars} characters`).optional();
}

const promptBody = text().refine((value) => value.trim() !== '', 'must not be empty');

const tags = z
  .array(oneLine(limits.tagChars), 'must be an array of strings')
  .max(limits.tags, `must hold at most ${limits.tags} tags`)
  .refine((values) => new Set(values).size === values.length, 'must not repeat a tag');

const uuid = z.uuid('must be a UUID as returned by the API');

export const folderInput = z.object({
  name: oneLine(limits.folderNameChars),
  parentId: uuid.optional(),
});

export const newPromptInput = z.object({
  title: oneLine(limits.titleChars),
  body: promptBody,
  folderId: uuid.optional(),
  description: optionalText(limits.descriptionChars),
  tags: tags.optional(),
  /** Project whose key wraps the new prompt's data key; left out means no project. */
  projectId: z.uuid('must be a UUID as returned by GET /api/v1/projects').optional(),
  classification: z
    .enum(classifications, `must be one of ${classifications.join(', ')}`)
    .optional(),
});

export const newVersionInput = z.object({
  body: promptBody,
  note: optionalText(limits.noteChars),
  title: oneLine(limits.titleChars).optional(),
});

export const promptParams = z.object({ id: uuid });

export const versionParams = z.object({
  id: uuid,
  number: z.coerce
    .number('must be a version number')
    .int('must be a whole number')
    .positive('must be 1 or more'),
});

export const promptListQuery = z.object({
  folderId: uuid.optional(),
  includeArchived: z
    .enum(['true', 'false'], 'must be true or false')
    .default('false')
    .transform((value) => value === 'true'),
});

/**
 * Parses a request body. Unlike the pipeline's validation, field names are
 * the body's own (`title`, `tags.1`), which is how the console places each
 * error next to its input. A prompt body over the size limit is 413.
 */
export function parseBody<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const errors = fieldErrorsOf(result.error.issues, (path) =>
      path.length ? path.map(String).join('.') : 'request body',
    );
    throw problems.invalidRequest(
      errors.map((error) => `${error.field}: ${error.message}`).join('; '),
      errors,
    );
  }

  const body = (result.data as { body?: string }).body;
  if (body !== undefined && Buffer.byteLength(body, 'utf8') > limits.bodyBytes) {
    throw bodyTooLarge(Buffer.byteLength(body, 'utf8'));
  }
  return result.data;
}

function bodyTooLarge(bytes: number): ProblemError {
  const message = `must be at most ${limits.bodyBytes} bytes of UTF-8 text (${limits.bodyBytes / 1024} KiB); this one is ${bytes} bytes. Split the prompt or shorten it.`;
  return new ProblemError(413, 'payload_too_large', 'Payload too large', `body: ${message}`, [
    { field: 'body', message },
  ]);
}
