import assert from 'node:assert/strict';

import { z } from 'zod';

import { ProblemError } from './problem';
import { validate } from './validate';

function fieldErrors(schema: z.ZodType, input: unknown, where = 'body') {
  try {
    validate(schema, input, where);
  } catch (error) {
    assert.ok(error instanceof ProblemError);
    return error.errors;
  }
  assert.fail('the input was accepted');
}

describe('request validation messages', function () {
  const schema = z
    .object({
      name: z.string(),
      count: z.number().optional(),
      tags: z.array(z.string()).optional(),
      mode: z.enum(['keep', 'revoke']).optional(),
      permission: z.enum(Array.from({ length: 20 }, (_, index) => `p${index}`)).optional(),
      note: z.string().min(3, 'must be at least 3 characters').optional(),
    })
    .strict();

  it('says a missing field is required', function () {
    assert.deepEqual(fieldErrors(schema, {}), [{ field: 'name', message: 'is required' }]);
  });

  it('names the expected type', function () {
    assert.deepEqual(fieldErrors(schema, { name: 1, count: 'x', tags: 'y' }), [
      { field: 'name', message: 'must be a string' },
      { field: 'count', message: 'must be a number' },
      { field: 'tags', message: 'must be an array' },
    ]);
  });

  it('lists short enums and samples long ones', function () {
    assert.deepEqual(fieldErrors(schema, { name: 'n', mode: 'drop', permission: 'x' }), [
      { field: 'mode', message: 'must be one of "keep", "revoke"' },
      {
        field: 'permission',
        message: 'must be one of 20 allowed values, such as "p0", "p1", "p2"',
      },
    ]);
  });

  it('names each unknown field', function () {
    assert.deepEqual(fieldErrors(schema, { name: 'n', colour: 'red', size: 2 }), [
      { field: 'colour', message: 'is not a known field; remove it' },
      { field: 'size', message: 'is not a known field; remove it' },
    ]);
  });

  it('keeps messages a schema sets and prefixes query fields', function () {
    assert.deepEqual(fieldErrors(schema, { name: 'n', note: 'a' }), [
      { field: 'note', message: 'must be at least 3 characters' },
    ]);
    assert.deepEqual(fieldErrors(schema, {}, 'query'), [
      { field: 'query.name', message: 'is required' },
    ]);
  });
});
