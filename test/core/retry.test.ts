import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  HttpStatusError,
  HubError,
  InvalidArgumentError,
  ModelValidationError,
  LocalPathError,
  NetworkError,
  RequestTimeoutError,
} from '../../src/core/errors.js';
import {
  backoffDelayMs,
  DEFAULT_RETRY_OPTIONS,
  isRetryableCommitError,
  isRetryableWithFallback,
  retryServerErrorOnce,
  isRetryableError,
  isThrottlingError,
  isTransientFailure,
  isWriteRaceError,
  resolveRetryOptions,
  withRetry,
} from '../../src/core/retry.js';
import { HttpClient } from '../../src/core/http.js';
import { permanentTlsFailure } from '../../src/core/tls-failure.js';
import { startTestServer } from '../support/http-test-server.js';

const fast = resolveRetryOptions({ backoffFactor: 0, backoffJitter: 0 }, {});

describe('resolveRetryOptions', () => {
  it('uses MLflow defaults when nothing is set', () => {
    expect(resolveRetryOptions({}, {})).toEqual({ ...DEFAULT_RETRY_OPTIONS, totalTimeoutMs: undefined });
    expect(DEFAULT_RETRY_OPTIONS).toMatchObject({ maxRetries: 7, backoffFactor: 2, backoffJitter: 1, timeoutMs: 120_000 });
  });

  it('holds a "no timeout" value at the largest timer Node takes, instead of one that fires at once', async () => {
    const huge = resolveRetryOptions({ totalTimeoutMs: Infinity, maxRetryAfterMs: 1e12 }, { MLFLOW_HTTP_REQUEST_TIMEOUT: '3000000' });
    expect(huge).toMatchObject({ timeoutMs: 2_147_483_647, totalTimeoutMs: 2_147_483_647, maxRetryAfterMs: 2_147_483_647 });
    expect(resolveRetryOptions({ timeoutMs: Infinity, totalTimeoutMs: 1500.5 }, {})).toMatchObject({ timeoutMs: 2_147_483_647, totalTimeoutMs: 1501 });
    // Such a policy no longer ends a request or a deadline at once (both fired after 1-12 ms).
    const s = await startTestServer((_req, res) => void setTimeout(() => res.end('{"ok":true}'), 50));
    try {
      const http = new HttpClient({ retry: huge });
      await expect(withRetry((_attempt, signal) => http.send({ method: 'GET', url: `${s.url}/slow`, signal }), { retry: huge })).resolves.toMatchObject({ status: 200 });
    } finally {
      await s.close();
    }
  });

  it('reads MLflow env vars, and options beat them', () => {
    const env = {
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '3',
      MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: '0.5',
      MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: '0',
      MLFLOW_HTTP_REQUEST_TIMEOUT: '5',
    };
    expect(resolveRetryOptions({}, env)).toMatchObject({ maxRetries: 3, backoffFactor: 0.5, backoffJitter: 0, timeoutMs: 5000 });
    expect(resolveRetryOptions({ maxRetries: 1 }, env).maxRetries).toBe(1);
  });

  it('rejects values MLflow rejects, naming the variable', () => {
    expect(() => resolveRetryOptions({}, { MLFLOW_HTTP_REQUEST_MAX_RETRIES: '11' })).toThrow(/MLFLOW_HTTP_REQUEST_MAX_RETRIES must be an integer/);
    expect(() => resolveRetryOptions({}, { MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: 'x' })).toThrow(/MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR/);
    // 0 seconds is no timeout to requests either: the variable is named, not `retry.timeoutMs`.
    expect(() => resolveRetryOptions({}, { MLFLOW_HTTP_REQUEST_TIMEOUT: '0' })).toThrow(/^Environment variable MLFLOW_HTTP_REQUEST_TIMEOUT must be a number > 0, got "0"\. Set MLFLOW_HTTP_REQUEST_TIMEOUT to a number > 0, or unset it for the default\.$/);
    expect(resolveRetryOptions({}, { MLFLOW_HTTP_REQUEST_TIMEOUT: '0.5' }).timeoutMs).toBe(500);
    expect(() => resolveRetryOptions({ maxRetries: -1 }, {})).toThrow(InvalidArgumentError);
    expect(() => resolveRetryOptions({ totalTimeoutMs: 0 }, {})).toThrow(/totalTimeoutMs/);
  });
});

describe('backoffDelayMs', () => {
  it('follows urllib3: immediate first retry, then factor*2^(n-1) plus jitter, capped', () => {
    const opts = resolveRetryOptions({}, {});
    const noJitter = () => 0;
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelayMs(n, opts, noJitter))).toEqual([0, 4000, 8000, 16000, 32000, 64000, 120000, 120000]);
    expect(backoffDelayMs(2, opts, () => 0.5)).toBe(4500);
  });
});

describe('isRetryableError', () => {
  it('retries transient failures only', () => {
    expect(isRetryableError(new NetworkError('x'))).toBe(true);
    expect(isRetryableError(new RequestTimeoutError(10))).toBe(true);
    for (const status of [408, 429, 500, 502, 503, 504]) expect(isRetryableError(new HttpStatusError(status, 'x'))).toBe(true);
    for (const status of [400, 401, 403, 404, 409, 413, 501]) expect(isRetryableError(new HttpStatusError(status, 'x'))).toBe(false);
    expect(isRetryableError(new HttpStatusError(413, 'x', { retryAfterMs: 10 }))).toBe(true);
    expect(isRetryableError(new AbortedError())).toBe(false);
    expect(isRetryableError(new LocalPathError('PATH_NOT_FOUND', '/x', 'missing'))).toBe(false);
    expect(isRetryableError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableError(new TypeError('fetch failed'))).toBe(true);
    expect(isRetryableError({ statusCode: 503 })).toBe(true);
    expect(isRetryableError({ $metadata: { httpStatusCode: 403 } })).toBe(false);
    expect(isRetryableError(new TypeError('x is not a function'))).toBe(false);
  });

  it('does not retry a fetch that failed on TLS no retry mends: https:// to a plain-HTTP port (the Hub client\'s fetch)', async () => {
    const plain = await startTestServer((_req, res) => void res.end('{}'));
    try {
      const http = new HttpClient({ retry: resolveRetryOptions({}, {}) });
      const error = await http.fetch(plain.url.replace('http://', 'https://')).catch((e: unknown) => e);
      await http.close();
      // Node's own error, as fetch wraps it: `TypeError: fetch failed`, its cause the TLS one.
      expect(error).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
      expect(permanentTlsFailure(error)).toMatchObject({ what: 'the server did not answer in TLS', hint: expect.stringContaining('use http:// instead of https://') });
      expect(isRetryableError(error)).toBe(false);
      // A fetch that failed on the connection itself stays retried.
      const refused = await new HttpClient({ retry: resolveRetryOptions({}, {}) }).fetch('https://127.0.0.1:9/').catch((e: unknown) => e);
      expect(permanentTlsFailure(refused)).toBeUndefined();
      expect(isRetryableError(refused)).toBe(true);
    } finally {
      await plain.close();
    }
  });
});

describe('isRetryableWithFallback', () => {
  it('retries what isRetryableError retries except a 500, which a caller with another way takes as final', () => {
    expect(isRetryableWithFallback(new HttpStatusError(500, 'failed'))).toBe(false);
    expect(isRetryableWithFallback({ statusCode: 500 })).toBe(false);
    for (const status of [408, 429, 502, 503, 504]) expect(isRetryableWithFallback(new HttpStatusError(status, 'x'))).toBe(true);
    expect(isRetryableWithFallback(new NetworkError('x'))).toBe(true);
    expect(isRetryableWithFallback(new HttpStatusError(404, 'x'))).toBe(false);
  });
});

describe('retryServerErrorOnce', () => {
  it('retries a 500 once per classifier, and everything else as isRetryableError does', () => {
    const isRetryable = retryServerErrorOnce();
    expect(isRetryable(new HttpStatusError(503, 'busy'))).toBe(true);
    expect(isRetryable(new HttpStatusError(500, 'failed'))).toBe(true);
    expect(isRetryable(new HttpStatusError(500, 'failed'))).toBe(false);
    expect(isRetryable(new HttpStatusError(503, 'busy'))).toBe(true);
    expect(isRetryable(new HttpStatusError(404, 'x'))).toBe(false);
    expect(retryServerErrorOnce()(new HttpStatusError(500, 'failed'))).toBe(true); // a new request, a new count
  });

  it('resetsToo: a connection reset while sending counts as that 500; a refused connection is still retried in full', () => {
    const reset = () => new NetworkError('PUT failed: write ECONNRESET', { cause: Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' }) });
    const refused = () => new NetworkError('PUT failed: connect ECONNREFUSED', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
    const isRetryable = retryServerErrorOnce({ resetsToo: true });
    expect(isRetryable(reset())).toBe(true);
    expect(isRetryable(new HttpStatusError(500, 'failed'))).toBe(false);
    expect(isRetryable(reset())).toBe(false);
    expect(isRetryable(refused())).toBe(true);
    expect(retryServerErrorOnce()(reset())).toBe(true);
    expect(retryServerErrorOnce()(reset())).toBe(true); // without resetsToo, a reset is a network fault like any other
  });
});

describe('isRetryableCommitError', () => {
  it('retries what isRetryableError retries, plus 409/412 conflicts (the caller checks the commit did not land)', () => {
    expect(isRetryableCommitError(new NetworkError('x'))).toBe(true);
    expect(isRetryableCommitError({ statusCode: 503 })).toBe(true);
    for (const status of [409, 412]) {
      expect(isRetryableCommitError(new HubError('x', { status }))).toBe(true);
      expect(isRetryableCommitError(Object.assign(new Error('conflict'), { statusCode: status }))).toBe(true);
    }
    for (const status of [400, 401, 403, 404]) expect(isRetryableCommitError(new HubError('x', { status }))).toBe(false);
    expect(isRetryableCommitError(new HubError('x'))).toBe(false);
    expect(isRetryableCommitError(new AbortedError())).toBe(false);
  });
});

describe('isTransientFailure', () => {
  it('is true for failures a later call may retry: network, timeout, abort, transient or conflicting Hub answers', () => {
    expect(isTransientFailure(new NetworkError('x'))).toBe(true);
    expect(isTransientFailure(new RequestTimeoutError(10))).toBe(true);
    expect(isTransientFailure(new AbortedError())).toBe(true);
    for (const status of [408, 409, 412, 429, 500, 503]) expect(isTransientFailure(new HubError('x', { status }))).toBe(true);
    expect(isTransientFailure(new HubError('no answer'))).toBe(true);
    expect(isTransientFailure(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('is false for permanent failures', () => {
    for (const status of [400, 401, 403, 404]) expect(isTransientFailure(new HubError('x', { status }))).toBe(false);
    expect(isTransientFailure(new ModelValidationError('/m', ['no weights'], {}))).toBe(false);
    expect(isTransientFailure(new TypeError('x is not a function'))).toBe(false);
  });
});

describe('isThrottlingError and isWriteRaceError', () => {
  it('throttling: 429 and 503 (and GCS rate-limit reasons), not other failures', () => {
    expect(isThrottlingError(new HttpStatusError(429, 'slow down'))).toBe(true);
    expect(isThrottlingError(new HttpStatusError(503, 'busy'))).toBe(true);
    expect(isThrottlingError(new HttpStatusError(403, 'rate', { code: 'rateLimitExceeded' }))).toBe(true);
    expect(isThrottlingError(new HttpStatusError(500, 'boom'))).toBe(false);
    expect(isThrottlingError(new HttpStatusError(403, 'forbidden', { code: 'forbidden' }))).toBe(false);
    expect(isThrottlingError({ $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isThrottlingError(new NetworkError('reset'))).toBe(false);
  });

  it('a lost write race: a 400 carrying a database unique-constraint error, nothing else', () => {
    expect(isWriteRaceError(new HttpStatusError(400, 'x', { body: '(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.name' }))).toBe(true);
    expect(isWriteRaceError(new HttpStatusError(400, 'duplicate key value violates unique constraint "registered_model_aliases_pkey"'))).toBe(true);
    expect(isWriteRaceError(new HttpStatusError(400, 'INVALID_PARAMETER_VALUE: bad alias'))).toBe(false);
    expect(isWriteRaceError(new HttpStatusError(500, 'UNIQUE constraint failed'))).toBe(false);
    expect(isWriteRaceError(new Error('UNIQUE constraint failed'))).toBe(false);
  });
});

describe('withRetry', () => {
  it('retries transient errors and reports each retry', async () => {
    const events: number[] = [];
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new HttpStatusError(503, 'busy');
        return 'ok';
      },
      { retry: fast, onRetry: (e) => events.push(e.attempt) },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(events).toEqual([1, 2]);
  });

  it('fails at once on permanent errors', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw new HttpStatusError(404, 'gone');
      }, { retry: fast }),
    ).rejects.toMatchObject({ status: 404 });
    expect(calls).toBe(1);
  });

  it('gives up after maxRetries and rethrows the last error', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw new NetworkError(`drop ${calls}`);
      }, { retry: { ...fast, maxRetries: 2 } }),
    ).rejects.toThrow('drop 3');
    expect(calls).toBe(3);
  });

  it('waits what Retry-After says instead of the backoff', async () => {
    const delays: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ === 0) throw new HttpStatusError(429, 'slow down', { retryAfterMs: 20 });
        return 1;
      },
      { retry: resolveRetryOptions({ backoffFactor: 100 }, {}), onRetry: (e) => delays.push(e.delayMs) },
    );
    expect(delays).toEqual([20]);
  });

  it('takes a Retry-After of 0 (or a date already past) as none, and backs off as usual, as urllib3 does', async () => {
    const delays: number[] = [];
    let calls = 0;
    const policy = resolveRetryOptions({ backoffFactor: 0.01, backoffJitter: 0, maxRetries: 3 }, {});
    await withRetry(
      async () => {
        if (calls++ < 3) throw new HttpStatusError(503, 'busy', { retryAfterMs: 0 });
        return 1;
      },
      { retry: policy, onRetry: (e) => delays.push(e.delayMs) },
    );
    expect(delays).toEqual([1, 2, 3].map((n) => backoffDelayMs(n, policy)));
    expect(delays.slice(1).every((d) => d > 0)).toBe(true);
  });

  it('refuses to sleep longer than maxRetryAfterMs', async () => {
    let calls = 0;
    await expect(
      withRetry(async () => {
        calls++;
        throw new HttpStatusError(503, 'maintenance', { retryAfterMs: 10_000_000 });
      }, { retry: fast }),
    ).rejects.toMatchObject({ status: 503 });
    expect(calls).toBe(1);
  });

  it('stops promptly on abort, also during a backoff sleep', async () => {
    const controller = new AbortController();
    const slow = resolveRetryOptions({ backoffFactor: 60, backoffJitter: 0 }, {});
    let calls = 0;
    const promise = withRetry(
      async () => {
        calls++;
        throw new NetworkError('down');
      },
      { retry: slow, signal: controller.signal },
    );
    setTimeout(() => controller.abort(), 50);
    await expect(promise).rejects.toBeInstanceOf(AbortedError);
    expect(calls).toBe(2); // the first retry is immediate, the second waits 4 minutes and is aborted
  });

  it('enforces an overall deadline', async () => {
    const promise = withRetry(async () => {
      throw new NetworkError('down');
    }, { retry: resolveRetryOptions({ backoffFactor: 60, totalTimeoutMs: 50 }, {}) });
    await expect(promise).rejects.toThrow(/overall deadline of 50 ms/);
  });
});
