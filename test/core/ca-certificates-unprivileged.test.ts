/**
 * A CA directory (`caCertPath` as requests takes one) with a file this user may not read, as a
 * user without root's privileges: root reads every file, so when the tests run as root (as CI
 * does) this file drops root for good once its fixtures exist (test/support/unprivileged.ts).
 * The CA is trusted for real: an https server whose self-signed certificate is the CA.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { HttpClient } from '../../src/core/http.js';
import { resolveRetryOptions } from '../../src/core/retry.js';
import { recordingLogger } from '../uploader/helpers.js';
import { selfSignedCertificate } from '../support/http-test-server.js';
import { dropRootForGood, giveToNobody, isRoot, NOBODY } from '../support/unprivileged.js';

let root: string;
let server: Server;
let url: string;

describe('a CA directory with an unreadable file (as nobody when the tests run as root)', () => {
  beforeAll(async () => {
    // Everything needing root first: the fixtures, handed to nobody, then root dropped.
    root = mkdtempSync(join(tmpdir(), 'au-ca-unreadable-'));
    const certificate = selfSignedCertificate();
    // Sorted before the CA, as `openssl rehash` names: the CA would never be reached if it stopped the read.
    mkdirSync(join(root, 'cas'));
    writeFileSync(join(root, 'cas', '00000000.0'), certificate.cert);
    writeFileSync(join(root, 'cas', 'corp-ca.pem'), certificate.cert);
    mkdirSync(join(root, 'only-unreadable'));
    writeFileSync(join(root, 'only-unreadable', 'corp-ca.pem'), certificate.cert);
    giveToNobody(root);
    // Its owner (nobody, or the current user) may not read them.
    chmodSync(join(root, 'cas', '00000000.0'), 0o000);
    chmodSync(join(root, 'only-unreadable', 'corp-ca.pem'), 0o000);
    server = createServer({ key: certificate.key, cert: certificate.cert }, (_req, res) => res.end('{"trusted":true}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    dropRootForGood();
    expect(process.getuid?.()).not.toBe(0);
    if (isRoot) expect(process.getuid?.()).toBe(NOBODY);
    expect(() => readFileSync(join(root, 'cas', '00000000.0'))).toThrow(/EACCES/);
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  const client = (caCertPath: string, logger = recordingLogger()) => new HttpClient({ retry: resolveRetryOptions({ maxRetries: 0 }, {}), tls: { caCertPath }, logger });

  it('skips the unreadable file, as OpenSSL does, trusts the rest, and warns once naming it', async () => {
    const logger = recordingLogger();
    for (const http of [client(join(root, 'cas'), logger), client(join(root, 'cas'), logger)]) {
      const response = await http.request({ method: 'GET', url });
      expect(response).toMatchObject({ status: 200, body: { trusted: true } });
    }
    const warnings = logger.lines.filter(([level]) => level === 'warn').map(([, message]) => message);
    expect(warnings).toEqual([expect.stringContaining(`Skipped ${join(root, 'cas', '00000000.0')} of the CA directory ${join(root, 'cas')}: it cannot be read`)]);
  });

  it('a directory whose only certificate file is unreadable is the ConfigError naming that file, before it connects', async () => {
    const logger = recordingLogger();
    let connections = 0;
    server.on('secureConnection', () => connections++);
    const error = await client(join(root, 'only-unreadable'), logger)
      .request({ method: 'GET', url })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`The certificate file ${join(root, 'only-unreadable', 'corp-ca.pem')} (caCertPath / MLFLOW_TRACKING_SERVER_CERT_PATH) cannot be read.`);
    expect((error as ConfigError).hint).toMatch(/^Point MLFLOW_TRACKING_SERVER_CERT_PATH at /);
    expect(connections).toBe(0);
    expect(logger.lines.filter(([level]) => level === 'warn')).toEqual([]);
  });
});
