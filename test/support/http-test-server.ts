/** A tiny scripted HTTP (or HTTPS) server on 127.0.0.1 for unit tests of the HTTP layer. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type Handler = (req: RecordedRequest, res: ServerResponse, index: number) => void | Promise<void>;

/**
 * A self-signed certificate for `127.0.0.1` (openssl, in a new temp dir), valid two days: no CA
 * on this machine trusts it; `certPath` is the CA bundle that does.
 */
export function selfSignedCertificate(): { key: Buffer; cert: Buffer; certPath: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'au-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), certPath: join(dir, 'cert.pem'), dir };
}

/**
 * Starts the server; with `tls`, over HTTPS with a {@link selfSignedCertificate} (`certPath`
 * names it, for a client told to trust it).
 */
export async function startTestServer(
  handler: Handler,
  options: { tls?: boolean } = {},
): Promise<{ url: string; requests: RecordedRequest[]; certPath?: string; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const certificate = options.tls ? selfSignedCertificate() : undefined;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const recorded = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(recorded);
      void handler(recorded, res, requests.length - 1);
    });
  };
  const server = certificate ? createHttpsServer({ key: certificate.key, cert: certificate.cert }, listener) : createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${certificate ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    ...(certificate ? { certPath: certificate.certPath } : {}),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        if (certificate) rmSync(certificate.dir, { recursive: true, force: true });
        server.close(() => r());
      }),
  };
}
