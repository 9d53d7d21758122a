/**
 * How an error's message and hint read together: `message` is the sentence a user sees, so the
 * hint after it must not run on from a message that ends without punctuation (a server's own
 * `Run 'x' not found`).
 */
import { describe, expect, it } from 'vitest';
import { ArtifactUploaderError, MlflowApiError } from '../../src/core/errors.js';

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
