/**
 * `toUploaderError`: a foreign error (an SDK's, a server's, a callback's) becomes one of ours with
 * its message kept, and redacted as every other message that quotes a foreign text: it reaches
 * results, logs and the CLI's `--json`.
 */
import { describe, expect, it } from 'vitest';
import { ArtifactUploaderError } from '../../src/core/errors.js';
import { registerSecret } from '../../src/core/logger.js';
import { toUploaderError } from '../../src/uploader/result.js';

/** A token of the shape the Hub hands out (`hf_` and 34 letters or digits), known to no one. */
const HUB_TOKEN = 'hf_Zy9XwVuTsRqPoNmLkJiHgFeDcBa87654321';

describe('toUploaderError', () => {
  it("masks the tokens a foreign error's message carries, and keeps the file names it names", () => {
    registerSecret('sdk-secret-4c1e');
    const foreign = new Error(`PUT ckpt/hf_weights.bin refused: Authorization: Bearer ${HUB_TOKEN} (key sdk-secret-4c1e) via https://bob:pw@proxy.internal:3128`);
    const error = toUploaderError(foreign, ' (ckpt/hf_weights.bin)');
    expect(error).toBeInstanceOf(ArtifactUploaderError);
    expect(error.code).toBe('UPLOAD_FAILED');
    expect(error.message).toBe('Upload failed (ckpt/hf_weights.bin): PUT ckpt/hf_weights.bin refused: Authorization: Bearer *** (key ***) via https://***@proxy.internal:3128');
    expect(JSON.stringify(error.toJSON())).not.toMatch(/hf_Zy9X|sdk-secret-4c1e|bob:pw/);
    // The error as it was thrown stays the cause, for instanceof checks.
    expect(error.cause).toBe(foreign);
    // A thrown string too.
    expect(toUploaderError(`token ${HUB_TOKEN}`).message).toBe('Upload failed: token hf_***');
  });

  it('returns our own errors as they are', () => {
    const ours = new ArtifactUploaderError('UPLOAD_FAILED', 'ours');
    expect(toUploaderError(ours)).toBe(ours);
  });
});
