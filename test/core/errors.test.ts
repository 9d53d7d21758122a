/**
 * How an error's message and hint read together: `message` is the sentence a user sees, so the
 * hint after it must not run on from a message that ends without punctuation (a server's own
 * `Run 'x' not found`). And what `util.inspect` (console.log) shows of an error: all of it,
 * the cause chain included, with secrets masked.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ArtifactUploaderError, HubError, MlflowApiError } from '../../src/core/errors.js';
import { registerSecret } from '../../src/core/logger.js';

describe('message and hint', () => {
  it('ends a message without punctuation with a period before the hint', () => {
    const error = new ArtifactUploaderError('X', "Run 'abc' not found", { hint: 'Check the run id.' });
    expect(error.message).toBe("Run 'abc' not found. Check the run id.");
    expect(error.hint).toBe('Check the run id.');
  });

  it('leaves a message that ends a sentence (or has no hint) as it is', () => {
    expect(new ArtifactUploaderError('X', 'Nothing was uploaded.', { hint: 'Try again.' }).message).toBe('Nothing was uploaded. Try again.');
    expect(new ArtifactUploaderError('X', 'Is it "a?"', { hint: 'Ask.' }).message).toBe('Is it "a?" Ask.');
    expect(new ArtifactUploaderError('X', 'no hint here').message).toBe('no hint here');
  });

  it('applies to a server message quoted in an MLflow API error', () => {
    const error = new MlflowApiError(404, 'RESOURCE_DOES_NOT_EXIST', 'mlflow/runs/get', "Run 'abc' not found", { hint: 'The run id does not exist on this server.' });
    expect(error.message).toMatch(/not found\. The run id does not exist/);
  });
});

describe('util.inspect (console.log) of an error', () => {
  // A third party's error as it was thrown, quoting a server that echoed the request's credentials.
  const echoedCause = (token: string) =>
    Object.assign(new Error(`refused: GET /api/whoami authorization=Bearer ${token}`), { data: { error: `token ${token} is not allowed` }, url: 'https://hub.example/api/whoami' });

  it('masks secrets in the cause chain and own fields, and still shows them', () => {
    const token = `cnryinspect${randomBytes(12).toString('hex')}`;
    registerSecret(token);
    const error = new HubError('Hub call failed (whoami): refused.', { status: 403, url: 'https://hub.example/api/whoami', cause: echoedCause(token) });
    for (const shown of [inspect(error, { depth: Infinity }), inspect(error, { colors: true }), inspect({ result: { error } }, { depth: Infinity })]) {
      expect(shown).not.toContain(token);
      // Nothing else is lost: the stack, the fields, the cause and its own fields are all there.
      expect(shown).toMatch(/HubError: Hub call failed \(whoami\): refused\.\n\s+at /);
      expect(shown).toMatch(/status: (\x1b\[33m)?403/);
      expect(shown).toMatch(/\[cause\]: Error: refused: GET \/api\/whoami authorization=Bearer \*\*\*/);
      expect(shown).toContain('***');
    }
  });

  it('masks a cause that is itself one of our errors, and its cause', () => {
    const token = `cnryinspect${randomBytes(12).toString('hex')}`;
    registerSecret(token);
    const inner = new ArtifactUploaderError('X', 'inner', { cause: echoedCause(token) });
    const outer = new ArtifactUploaderError('Y', 'outer', { cause: inner });
    const shown = inspect(outer, { depth: Infinity });
    expect(shown).not.toContain(token);
    expect(shown).toMatch(/\[cause\]: ArtifactUploaderError: inner[\s\S]*\[cause\]: Error: refused/);
  });
});
