/** The guard that keeps test suites off the public Hub. */
import { describe, expect, it } from 'vitest';
import { PublicHubInTestError } from '../../src/core/errors.js';
import { assertHubAllowed, detectTestRunner, isPublicHubUrl } from '../../src/hub/test-guard.js';

const quiet = { env: {}, globals: {}, execArgv: [] as string[] };

describe('detectTestRunner', () => {
  it('sees vitest in this process', () => {
    expect(detectTestRunner()).toMatch(/vitest/);
  });

  it.each([
    [{ VITEST: 'true' }, /vitest/],
    [{ JEST_WORKER_ID: '1' }, /jest/],
    [{ MOCHA_WORKER_ID: '0' }, /mocha/],
    [{ NODE_TEST_CONTEXT: 'child-v8' }, /node:test/],
    [{ NODE_ENV: 'test' }, /NODE_ENV=test/],
    [{ npm_lifecycle_event: 'test', CI: 'true' }, /npm_lifecycle_event=test with CI=true/],
    [{ npm_lifecycle_event: 'test:unit' }, /npm_lifecycle_event=test:unit/],
  ])('recognises %j', (env, expected) => {
    expect(detectTestRunner({ ...quiet, env })).toMatch(expected);
  });

  it('recognises node --test and mocha-style globals, and nothing in a plain process', () => {
    expect(detectTestRunner({ ...quiet, execArgv: ['--test'] })).toMatch(/node:test/);
    expect(detectTestRunner({ ...quiet, globals: { describe() {}, it() {} } })).toMatch(/mocha/);
    expect(detectTestRunner(quiet)).toBeUndefined();
    expect(detectTestRunner({ ...quiet, env: { CI: 'true', NODE_ENV: 'production', npm_lifecycle_event: 'start', VITEST: 'false' } })).toBeUndefined();
  });
});

describe('assertHubAllowed', () => {
  it('knows the public Hub by host', () => {
    for (const url of ['https://huggingface.co', 'https://HuggingFace.co/', 'https://hf.co', 'https://api.huggingface.co/x', 'https://huggingface.co.']) expect(isPublicHubUrl(url), url).toBe(true);
    for (const url of ['http://127.0.0.1:8080', 'http://localhost', 'https://hub.internal.example', 'https://nothuggingface.co']) expect(isPublicHubUrl(url), url).toBe(false);
    expect(() => isPublicHubUrl('not a url')).toThrow(/hubUrl/);
  });

  it('refuses the public Hub under a test runner unless allowed; local Hubs always pass', () => {
    expect(() => assertHubAllowed('https://huggingface.co')).toThrow(PublicHubInTestError);
    const error = (() => {
      try {
        assertHubAllowed('https://hf.co', { ...quiet, env: { JEST_WORKER_ID: '3' } });
      } catch (e) {
        return e as PublicHubInTestError;
      }
    })();
    expect(error?.detectedBy).toMatch(/jest/);
    expect(error?.message).toMatch(/allowPublicHubInTests/);
    expect(() => assertHubAllowed('https://huggingface.co', { allowPublicHubInTests: true })).not.toThrow();
    expect(() => assertHubAllowed('https://huggingface.co', quiet)).not.toThrow();
    expect(() => assertHubAllowed('http://127.0.0.1:1234')).not.toThrow();
  });
});
